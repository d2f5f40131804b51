"""The Magento simulator's state: one section per module, composed here behind one lock.

Everything is synchronous and guarded by one re-entrant lock, so the aiohttp handlers
(on the simulator's loop) and the seeding/inspection calls of a test (on another thread)
can both use it. The sections: ``auth`` (tokens, integrations, OAuth), ``catalog``
(store views, attributes, products, saves, seeding), ``search`` (searchCriteria),
``bulk`` (async and bulk operations), ``faults`` (injected failures) and ``writelog``
(the saves made through the API).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from catalogflow.testbench.magento.auth import Auth
from catalogflow.testbench.magento.bulk import Bulks
from catalogflow.testbench.magento.catalog import Catalog
from catalogflow.testbench.magento.config import MagentoSimConfig
from catalogflow.testbench.magento.faults import Faults
from catalogflow.testbench.magento.writelog import WriteLog


class Store:
    """All simulator state; ``config`` may be replaced at runtime (under ``lock``)."""

    def __init__(self, config: MagentoSimConfig, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.config = config
        self.faults = Faults(self.lock)
        self.write_log = WriteLog(self.lock)
        self.auth = Auth(self.lock, self._config, clock)
        self.catalog = Catalog(self.lock, self._config, clock, self.faults, self.write_log)
        self.bulks = Bulks(self.catalog)

    def _config(self) -> MagentoSimConfig:
        return self.config
