"""Shadow traffic: a version holding the shadow alias answers the champion's calls in the background, after
the caller has its answer; its answers are compared with the champion's, window by window.

`mirror.py` holds the bounded queue and the workers that call the shadow version; `compare.py` the pure
comparison of two answers and the windows it adds up to (written back to MLflow by the tool server).
"""

from bridge.shadow.compare import Comparison, ShadowHistory, WindowCounter, compare
from bridge.shadow.mirror import ShadowMirror, ShadowSettings, shadow_target

__all__ = ["Comparison", "ShadowHistory", "ShadowMirror", "ShadowSettings", "WindowCounter", "compare",
           "shadow_target"]
