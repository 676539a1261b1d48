"""Tool settings: code sandbox, local files, GitHub, web search, MCP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from ._types import ByteSize
from .base import ClaraSettingsBase

_DOCKER_MEM_RE = re.compile(r"^\d+[bkmg]?$", re.IGNORECASE)


class ToolSettings(ClaraSettingsBase):
    sandbox_mode: Literal["auto", "local", "remote", "bwrap"] = Field(
        "auto",
        description="Code sandbox: local (Docker; 'docker' works too), remote (sandbox service), "
        "bwrap (bubblewrap) or auto.",
    )
    docker_sandbox_image: str = Field("python:3.12-slim", description="Image for Docker sandboxes.")
    docker_sandbox_timeout: int = Field(
        900, ge=10, description="Seconds an idle sandbox container lives before it is removed."
    )
    docker_sandbox_memory: str = Field(
        "512m", description="Memory limit per sandbox, Docker syntax (512m, 1g)."
    )
    docker_sandbox_cpu: float = Field(
        1.0, gt=0, le=64, description="CPU limit per sandbox (cores)."
    )
    docker_sandbox_network: str = Field(
        "bridge",
        min_length=1,
        description=(
            "Docker network sandboxes join when SANDBOX_NETWORK=on (a daemon started with "
            "--bridge=none has no 'bridge': create one, e.g. docker network create "
            "clara-sandbox). Missing: sandboxes run with no network, said in the log and doctor."
        ),
    )
    sandbox_api_url: str | None = Field(None, description="URL of a remote sandbox service.")
    sandbox_api_key: SecretStr | None = Field(
        None, description="API key for the remote sandbox service."
    )
    sandbox_timeout: int = Field(60, ge=1, description="Seconds a remote sandbox request may take.")
    sandbox_exec_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds one sandbox command may run before everything it started is killed.",
    )
    sandbox_network: bool = Field(
        False,
        description="Let sandboxed code reach the network (on/off). Off: no network at all.",
    )
    sandbox_dir: Path = Field(
        Path("clara_sandboxes"),
        description="Where the per-user sandbox workspaces live on the host (Docker and bwrap).",
    )
    sandbox_max_sandboxes: int = Field(
        10, ge=1, le=1000, description="Most sandboxes alive at once; idle ones are reaped first."
    )
    sandbox_output_limit: ByteSize = Field(
        64 * 1024,
        ge=1024,
        description="Output kept per stream and command (head and tail), e.g. 64KiB.",
    )
    sandbox_workspace_quota: ByteSize = Field(
        200 * 1024 * 1024,
        ge=8 * 1024 * 1024,
        description="Disk space per user workspace (a hard cap when loop devices are usable).",
    )
    sandbox_pids_limit: int = Field(
        128, ge=8, le=65536, description="Most processes one sandbox may run at once."
    )
    sandbox_pip_index_url: str | None = Field(
        "https://pypi.org/simple/",
        description=(
            "Package index install_package downloads wheels from (on the host; the sandbox "
            "stays offline). Empty: install_package is not offered."
        ),
    )

    clara_files_dir: Path = Field(Path("clara_files"), description="Per-user local file storage.")
    clara_max_file_size: ByteSize = Field(
        50 * 1024 * 1024,
        gt=0,
        description="Largest file Clara stores, in bytes (accepts 50MB, 512KiB).",
    )
    clara_files_quota: ByteSize = Field(
        100 * 1024 * 1024,
        ge=0,
        description="Space each user's stored files may take, in bytes (accepts 100MiB, 1GB); 0 = no limit.",
    )
    github_token: SecretStr | None = Field(
        None, description="GitHub token; set, the github_* tools are offered."
    )
    github_api_url: str = Field(
        "https://api.github.com",
        description="GitHub REST API address: change it for GitHub Enterprise (https://HOST/api/v3).",
    )
    github_write_roles: str = Field(
        "admins",
        description=(
            "Who may use the GitHub tools that write (create issues, PRs, files, gists, comments, "
            "stars; run workflows): admins (Discord admins and the Clara-Admin role), everyone, "
            "or a comma list of Discord role names and/or role IDs that may write besides admins "
            "(e.g. Developers,123456789012345678)."
        ),
    )
    tavily_api_key: SecretStr | None = Field(
        None, description="Tavily API key; set, the web_search tool is offered."
    )
    tavily_base_url: str | None = Field(
        None,
        description="Tavily API address, for a proxy or a test server (default https://api.tavily.com).",
    )
    mcp_servers_dir: Path = Field(
        Path(".mcp_servers"),
        description="Where installed MCP servers live (one directory, venv or node_modules each).",
    )
    mcp_connect_timeout: float = Field(
        30.0, gt=0, le=600, description="Seconds an MCP server may take to start and answer."
    )
    mcp_call_timeout: float = Field(
        60.0, gt=0, le=3600, description="Seconds one MCP tool call may take before it is stopped."
    )
    mcp_install_timeout: float = Field(
        300.0,
        ge=10,
        le=3600,
        description="Seconds an MCP server install (npm, pip, git clone, docker pull) may take.",
    )
    mcp_docker_network: str = Field(
        "default",
        min_length=1,
        description=(
            "Network of MCP servers installed from Docker images: default (Docker's default "
            "network; most servers call an API), none (no network), or a Docker network's name."
        ),
    )
    mcp_docker_memory: str = Field(
        "512m", description="Memory limit of each Docker MCP server, Docker syntax (512m, 1g)."
    )
    mcp_docker_cpus: float = Field(
        1.0, gt=0, le=64, description="CPU limit of each Docker MCP server (cores)."
    )
    smithery_api_key: SecretStr | None = Field(
        None,
        description="Smithery API key: lets admins install servers hosted on Smithery "
        "(mcp_install source=smithery).",
    )
    smithery_api_url: str = Field(
        "https://api.smithery.ai",
        description="Smithery registry API address (for a proxy or a test server).",
    )
    clara_secret_key: SecretStr | None = Field(
        None,
        description=(
            "Fernet key that encrypts MCP servers' env and header values in the database; a "
            "comma list rotates (the first encrypts, all decrypt). Make one with: python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'. "
            "Unset: one is generated once in CLARA_DATA_DIR/secret.key (mode 0600)."
        ),
    )

    @field_validator("clara_secret_key")
    @classmethod
    def _fernet_keys(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or not v.get_secret_value().strip():
            return None
        from cryptography.fernet import Fernet

        keys = [k.strip() for k in v.get_secret_value().split(",") if k.strip()]
        for i, key in enumerate(keys, 1):
            try:
                Fernet(key)
            except (ValueError, TypeError):
                raise ValueError(
                    f"key {i} is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        return v

    @field_validator("sandbox_mode", mode="before")
    @classmethod
    def _lower_mode(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        v = v.strip().lower()
        if v == "docker":
            return "local"  # the later spec's name for the local Docker backend
        if v in ("incus", "incus-vm"):
            raise ValueError(
                f"'{v}' sandboxes are not supported here: use docker (local), remote, bwrap or auto"
            )
        return v

    @field_validator("github_write_roles")
    @classmethod
    def _write_roles(cls, v: str) -> str:
        items = [i.strip() for i in v.split(",") if i.strip()]
        keywords = {i.lower() for i in items} & {"admins", "everyone"}
        if not items or [i.lower() for i in items] == ["admins"]:
            return "admins"
        if "everyone" in keywords:
            if len(items) > 1:
                raise ValueError("'everyone' already includes every role: use it alone")
            return "everyone"
        # Admins may always write; the list names who else may.
        return ",".join(i for i in items if i.lower() != "admins")

    @field_validator("github_api_url", "smithery_api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("https://", "http://")):
            raise ValueError("use the API's full address, e.g. https://api.github.com")
        return v

    @field_validator("docker_sandbox_memory", "mcp_docker_memory")
    @classmethod
    def _docker_memory(cls, v: str) -> str:
        if not _DOCKER_MEM_RE.match(v.strip()):
            raise ValueError("use Docker's memory syntax, e.g. 512m or 1g")
        return v.strip().lower()
