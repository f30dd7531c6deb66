"""Shared by the benchmarks: a province-scale units file (the pilot fanned out to N units)."""

from __future__ import annotations

from pathlib import Path

OFFICE_ROLES = [
    "legal_affairs_office",
    "county_government_office",
    "supervision_bureau",
    "audit_bureau",
    "information_office",
    "court",
    "complaint_center",
    "justice_bureau",
    "administrative_service_center",
    "human_resources_bureau",
    "inspection_office",
    "staffing_office",
    "finance_bureau",
    "leading_group_office",
]


def write_units(path: Path, units: int) -> Path:
    """``units`` units: one per office role, then 60 % law-enforcement agencies, 40 % townships."""
    lines = []
    for i, role in enumerate(OFFICE_ROLES):
        lines += [
            "[[units]]",
            f'id = "office-{i:02d}"',
            f'name = "省直办公室{i:02d}"',
            f'emails = ["office{i:02d}@example.gov.cn"]',
            f'roles = ["{role}"]',
            "",
        ]
    rest = units - len(OFFICE_ROLES)
    for i in range(rest):
        role = "law_enforcement_agency" if i < rest * 0.6 else "township_government"
        lines += [
            "[[units]]",
            f'id = "unit-{i:05d}"',
            f'name = "单位{i:05d}"',
            f'emails = ["u{i:05d}@example.gov.cn"]',
            f'roles = ["{role}"]',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_register(path: Path, units: int, every: int = 10) -> Path:
    """A normative-documents register: one document for every ``every``-th unit, expiring in 2026."""
    rows = ["id,title,unit,expires_on"]
    for i in range(0, units - len(OFFICE_ROLES), every):
        rows.append(f"doc-{i:05d},规范性文件{i:05d},unit-{i:05d},2026-{1 + i % 12:02d}-{1 + i % 28:02d}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
