"""The registry, the adapter modules and the contract suite's cases name the same CRMs.

An adapter module without a case would skip the whole contract suite silently; a case without a
registry entry would test a CRM no caller can reach.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service.adapters import registry
from service.adapters.base import HttpCrmAdapter
from tests.adapters.cases import CASES, CrmCase
from tests.fakes.base import FakeCrm

_NOT_ADAPTERS = {"__init__", "base", "fields", "registry"}


def test_the_registry_the_modules_and_the_cases_name_the_same_crms() -> None:
    modules = {p.stem for p in Path(registry.__file__).parent.glob("*.py")} - _NOT_ADAPTERS

    assert modules == set(registry.NAMES)
    assert {case.crm for case in CASES} == set(registry.NAMES)
    assert list(registry.NAMES) == sorted(registry.ADAPTERS)


@pytest.mark.parametrize("name", registry.NAMES)
def test_each_entry_is_its_modules_adapter_for_that_crm(name: str) -> None:
    cls = registry.adapter_class(name)

    assert issubclass(cls, HttpCrmAdapter)
    assert cls.name == name
    assert registry.ADAPTERS[name][0] == f"service.adapters.{name}"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_each_case_runs_against_its_own_crms_fake(case: CrmCase) -> None:
    fake = case.make_fake()

    assert isinstance(fake, FakeCrm)
    assert fake.name == case.crm
