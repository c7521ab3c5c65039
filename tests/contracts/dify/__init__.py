"""Dify 1.14.1's custom-tool import (parser.py) and call path (call.py), ported line for line from its source
(langgenius/dify commit bb73776339b1af45be0d1f1a4d39ff5ee916a7e4); FACTS.md cites each rule."""
