"""Reading a report page back: its embedded JSON blocks."""

from __future__ import annotations

import json
import re


def script_json(html: str, element_id: str):
    """The parsed content of <script type="application/json" id=element_id>."""
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert found, f"no #{element_id} block in the page"
    return json.loads(found.group(1))
