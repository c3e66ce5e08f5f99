"""What one worker sets up once, at startup, and every request shares: the policy and its detectors, the
prompt checker, the manifest store (with the API keys and the audit log in its database), the verifier, the
protector, the soft-binding index and, when a model is configured, the guarded generator.

These are the same library objects the CLI builds (`guard scan`, `guard verify`, `guard protect`,
`guard generate`); the routes call their methods and nothing else.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from PIL import Image

from guard.check_prompt import PromptChecker
from guard.errors import ConfigError
from guard.provenance.credentials.store import ManifestStore
from guard.serve.audit import AuditLog
from guard.serve.config import ServeSettings
from guard.serve.keys import ApiKeys
from guard.serve.metrics import Metrics, TimedDetector
from guard.serve.soft_binding import SoftBindingIndex
from policies import Policy, load_policy

log = logging.getLogger("guard.serve")


@dataclass
class Services:
    """Everything the routes use, loaded once per worker."""

    settings: ServeSettings
    policy: Policy
    detectors: dict[str, Any]
    prompts: PromptChecker
    """`guard check-prompt`'s checker: the policy's rules and, where it sets thresholds, the classifier."""
    store: ManifestStore
    keys: ApiKeys
    audit: AuditLog
    verifier: Any
    index: SoftBindingIndex
    metrics: Metrics
    protector: Any = None
    protector_error: str | None = None
    generator: Any = None
    pipeline: Any = None
    generate_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, settings: ServeSettings, metrics: Metrics) -> Services:
        """Open the store, load the policy, detectors, verifier, protector and (if configured) the model."""
        from guard.protect import Protector
        from guard.scan import detectors_for
        from guard.verify import Verifier

        policy = load_policy(settings.policy)
        store = ManifestStore.open(settings.store_url)
        try:
            detectors = {name: TimedDetector(name, d, metrics) for name, d in detectors_for(policy).items()}
            # exactly what `guard verify` and `guard protect` set up (trust lists, anchors, resolver, identity)
            verifier = Verifier.from_env(store=store)
            protector, protector_error = None, None
            try:
                protector = Protector.from_env(store=store)
            except ConfigError as exc:
                protector_error = str(exc)
                log.warning("POST /v1/images/protect is unavailable: %s", protector_error)
            services = cls(
                settings=settings,
                policy=policy,
                detectors=detectors,
                prompts=PromptChecker(policy),
                store=store,
                keys=ApiKeys(store.engine),
                audit=AuditLog(store.engine),
                verifier=verifier,
                index=SoftBindingIndex(store),
                metrics=metrics,
                protector=protector,
                protector_error=protector_error,
            )
            if settings.model:
                services._load_generator(settings.model)
        except BaseException:
            store.close()
            raise
        if settings.warm_up:
            services.warm_up()
        return services

    def _load_generator(self, model: str) -> None:
        from generation.loading import load_pipeline
        from guard.generate import Guard

        if self.protector is None:
            raise ConfigError(
                f"A model is configured for generation, but images cannot be signed: {self.protector_error}"
            )
        self.pipeline = load_pipeline(model)
        self.generator = Guard(self.policy, detectors=self.detectors, protector=self.protector)

    def warm_up(self) -> None:
        """Load every model now (the prompt classifier, detectors and watermark decoders load lazily) with one
        prompt and one small image."""
        from guard.scan import assess_images

        self.prompts.check(["a lighthouse at dusk"])
        picture = Image.new("RGB", (256, 256), (128, 128, 128))
        assess_images([picture], self.policy, self.detectors)
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        self.verifier.verify_bytes(buffer.getvalue(), name="warm-up.png")

    def store_reachable(self) -> str | None:
        """None when the store answers a query, else why not (one line)."""
        try:
            with self.store.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            return " ".join(str(getattr(exc, "orig", exc)).split())
        return None

    def close(self) -> None:
        self.verifier.close()
        self.store.close()
