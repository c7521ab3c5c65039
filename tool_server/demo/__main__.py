import sys

from tool_server.demo.registration import main

sys.exit(main())
