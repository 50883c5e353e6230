"""The CRMs this service can log into: an explicit, alphabetical map of name to adapter class.

Adapters are imported when first used. To add a CRM, add a module beside this one and a line here.
"""

from __future__ import annotations

import importlib

import httpx

from service.adapters.base import HttpCrmAdapter
from service.config import Settings
from service.errors import UnknownCrm

ADAPTERS: dict[str, tuple[str, str]] = {
    "bullhorn": ("service.adapters.bullhorn", "BullhornAdapter"),
    "clio": ("service.adapters.clio", "ClioAdapter"),
    "generic": ("service.adapters.generic", "GenericAdapter"),
    "googlesheets": ("service.adapters.googlesheets", "GoogleSheetsAdapter"),
    "hubspot": ("service.adapters.hubspot", "HubspotAdapter"),
    "insightly": ("service.adapters.insightly", "InsightlyAdapter"),
    "netsuite": ("service.adapters.netsuite", "NetSuiteAdapter"),
    "pipedrive": ("service.adapters.pipedrive", "PipedriveAdapter"),
    "redtail": ("service.adapters.redtail", "RedtailAdapter"),
    "salesforce": ("service.adapters.salesforce", "SalesforceAdapter"),
    "zoho": ("service.adapters.zoho", "ZohoAdapter"),
}

NAMES: tuple[str, ...] = tuple(sorted(ADAPTERS))


def adapter_class(name: str) -> type[HttpCrmAdapter]:
    try:
        module_name, class_name = ADAPTERS[name]
    except KeyError:
        raise UnknownCrm(name, NAMES) from None
    cls: type[HttpCrmAdapter] = getattr(importlib.import_module(module_name), class_name)
    return cls


class AdapterRegistry:
    """Builds each adapter once, all sharing one pooled HTTP client."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http
        self._adapters: dict[str, HttpCrmAdapter] = {}

    def get(self, name: str) -> HttpCrmAdapter:
        adapter = self._adapters.get(name)
        if adapter is None:
            adapter = adapter_class(name)(http=self._http, settings=self._settings.crm(name))
            self._adapters[name] = adapter
        return adapter
