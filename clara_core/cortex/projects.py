"""Shared projects: owner, members with roles, channels linked to a project.

Access control lives here and in the warm store's queries, not in the UI:
a non-member gets ``AccessDenied`` from every call that would reveal or change
a project's memories, whoever the caller is (slash command, tool, CLI).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import ChannelProject, Project, ProjectMember

from .types import AccessDenied, CortexError, check_user_id

log = logging.getLogger(__name__)

MANAGERS = ("owner", "admin")


@dataclass(frozen=True)
class ProjectInfo:
    id: str
    name: str
    owner_id: str
    members: dict[str, str]  # user id -> role


def _uuid(project_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(project_id))
    except ValueError as exc:
        raise CortexError(f"invalid project id {project_id!r}") from exc


class ProjectStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, name: str, owner_id: str, members: list[str] | None = None) -> str:
        """A shared project; the owner is always a member (role owner)."""
        check_user_id(owner_id)
        pid = uuid.uuid4()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(Project).values(
                    id=pid, name=name.strip()[:200], owner_id=owner_id, settings={"shared": True}
                )
            )
            rows = [{"project_id": pid, "user_id": owner_id, "role": "owner"}]
            rows += [
                {"project_id": pid, "user_id": check_user_id(m), "role": "member"}
                for m in dict.fromkeys(members or [])
                if m != owner_id
            ]
            await conn.execute(insert(ProjectMember), rows)
        return str(pid)

    async def info(self, project_id: str, *, as_user: str) -> ProjectInfo:
        await self.require_member(project_id, as_user)
        async with self.engine.connect() as conn:
            project = (
                await conn.execute(select(Project).where(Project.id == _uuid(project_id)))
            ).first()
            members = (
                await conn.execute(
                    select(ProjectMember.user_id, ProjectMember.role).where(
                        ProjectMember.project_id == _uuid(project_id)
                    )
                )
            ).all()
        if project is None:
            raise CortexError(f"no project {project_id}")
        return ProjectInfo(
            str(project.id), project.name, project.owner_id, {u: r for u, r in members}
        )

    async def role(self, project_id: str, user_id: str) -> str | None:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(ProjectMember.role).where(
                        ProjectMember.project_id == _uuid(project_id),
                        ProjectMember.user_id == check_user_id(user_id),
                    )
                )
            ).scalar_one_or_none()

    async def check_access(self, project_id: str, user_id: str) -> bool:
        return await self.role(project_id, user_id) is not None

    async def require_member(self, project_id: str, user_id: str) -> str:
        role = await self.role(project_id, user_id)
        if role is None:
            raise AccessDenied(f"{user_id} is not a member of project {project_id}")
        return role

    async def _require_manager(self, project_id: str, user_id: str) -> None:
        if await self.require_member(project_id, user_id) not in MANAGERS:
            raise AccessDenied(f"only the project's owner or an admin can do that ({user_id})")

    async def add_member(
        self, project_id: str, user_id: str, *, by: str, role: str = "member"
    ) -> None:
        if role not in ("admin", "member"):
            raise CortexError(f"role must be admin or member, not {role!r}")
        await self._require_manager(project_id, by)
        stmt = insert(ProjectMember).values(
            project_id=_uuid(project_id), user_id=check_user_id(user_id), role=role
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["project_id", "user_id"],
            set_={"role": role},
            where=ProjectMember.role != "owner",  # the owner stays owner
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def remove_member(self, project_id: str, user_id: str, *, by: str) -> bool:
        if by != user_id:  # anyone may leave; removing others needs a manager
            await self._require_manager(project_id, by)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(ProjectMember).where(
                    ProjectMember.project_id == _uuid(project_id),
                    ProjectMember.user_id == check_user_id(user_id),
                    ProjectMember.role != "owner",
                )
            )
        return result.rowcount > 0

    async def projects_of(self, user_id: str) -> list[ProjectInfo]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Project.id, Project.name, Project.owner_id, ProjectMember.role)
                    .join(ProjectMember, ProjectMember.project_id == Project.id)
                    .where(ProjectMember.user_id == check_user_id(user_id))
                    .order_by(Project.name)
                )
            ).all()
        return [ProjectInfo(str(r.id), r.name, r.owner_id, {user_id: r.role}) for r in rows]

    # -- channel links ----------------------------------------------------------

    async def link_channel(self, channel_id: str, project_id: str, *, by: str) -> None:
        await self._require_manager(project_id, by)
        stmt = insert(ChannelProject).values(
            channel_id=str(channel_id), project_id=_uuid(project_id), linked_by=by
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["channel_id"], set_={"project_id": _uuid(project_id), "linked_by": by}
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def unlink_channel(self, channel_id: str, *, by: str) -> bool:
        project_id = await self.project_for_channel(channel_id)
        if project_id is None:
            return False
        await self._require_manager(project_id, by)
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(ChannelProject).where(ChannelProject.channel_id == str(channel_id))
            )
        return True

    async def project_for_channel(self, channel_id: str) -> str | None:
        async with self.engine.connect() as conn:
            pid = (
                await conn.execute(
                    select(ChannelProject.project_id).where(
                        ChannelProject.channel_id == str(channel_id)
                    )
                )
            ).scalar_one_or_none()
        return str(pid) if pid else None

    async def channels_of(self, project_id: str, *, as_user: str) -> list[str]:
        await self.require_member(project_id, as_user)
        async with self.engine.connect() as conn:
            return list(
                (
                    await conn.execute(
                        select(ChannelProject.channel_id).where(
                            ChannelProject.project_id == _uuid(project_id)
                        )
                    )
                ).scalars()
            )

    async def delete_user_data(self, user_id: str) -> int:
        """Leave every project; projects the user owns are deleted (their members lose
        access; memories members wrote stay theirs, as personal memories)."""
        async with self.engine.begin() as conn:
            left = await conn.execute(
                delete(ProjectMember).where(ProjectMember.user_id == check_user_id(user_id))
            )
            owned = await conn.execute(
                delete(Project).where(
                    Project.owner_id == user_id, Project.settings["shared"].astext == "true"
                )
            )
        return left.rowcount + owned.rowcount
