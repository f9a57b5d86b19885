"""Registration forms built from what the API itself serves (profile + reference): pure functions.

Load tests must not import `engine`, so a valid form is derived from `GET /api/v1/me` and
`GET /api/v1/reference`, the same way a browser would fill it in.
"""

from __future__ import annotations

import random
from typing import Any

ELECTIVE_PAIRS = [
    ("LI", "HOA"),
    ("HOA", "SINH"),
    ("SU", "DIA"),
    ("DIA", "GDKTPL"),
    ("LI", "NN"),
    ("SU", "NN"),
    ("TIN", "NN"),
    ("LI", "TIN"),
    ("HOA", "CNNN"),
    ("DIA", "CNCN"),
]


def build_form(
    profile: dict[str, Any], reference: dict[str, Any], rng: random.Random
) -> dict[str, Any]:
    """A valid form for the logged-in candidate whose profile is `profile`."""
    school = profile["school"]
    province = school["province_code"]
    names = {p["code"]: p["name"] for p in reference["provinces"]}
    electives = list(rng.choice(ELECTIVE_PAIRS))
    language = "N1" if "NN" in electives else None
    return {
        "full_name": profile["full_name"],
        "date_of_birth": profile["date_of_birth"],
        "sex": profile["sex"],
        "national_id": profile["national_id"],
        "ethnicity": "Kinh",
        "birthplace": names.get(province, "TP Hà Nội"),
        "residence": {
            "address": f"{rng.randint(1, 300)} Đường Lê Lợi, Phường {rng.randint(1, 20)}",
            "province_code": province,
            "commune_code": None,
            "kv1_over_18_months": False,
        },
        "schools": [
            {"grade": grade, "province_code": province, "school_code": school["school_code"]}
            for grade in (10, 11, 12)
        ],
        "phone": f"09{rng.randint(10_000_000, 99_999_999)}",
        "email": None,
        "candidate_type": profile["candidate_type"],
        "purposes": ["graduation", "admission"],
        "electives": electives,
        "foreign_language": language,
        "exemptions": None,
        "priority_group": None,
        "exam_site_province": province,
    }
