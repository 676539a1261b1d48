"""GitHub tools (``github_*``), offered when GITHUB_TOKEN is set.

``client.py`` speaks GitHub's REST API (pagination, rate limits, errors);
``tools.py`` turns its answers into the short text the model reads.
"""

from .client import GitHubClient, Page
from .tools import WRITE_TOOLS, build_tools, register_github_tools

__all__ = ["WRITE_TOOLS", "GitHubClient", "Page", "build_tools", "register_github_tools"]
