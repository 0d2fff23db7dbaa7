"""Segment's and PostHog's own Python SDKs (PyPI, pinned in scripts/setup) sending to the edge
Worker, for tests/e2e_compat.rs. Usage: server.py HOST KEY RUN. Prints one JSON line: what the
SDKs reported as failed (nothing, when all is well)."""
import json
import sys

from posthog import Posthog
from segment.analytics import Client as Segment

host, key, run = sys.argv[1:4]
failed = []
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"


def on_error(e, batch):
    failed.append({"error": str(e), "messages": len(batch)})


def tagged(sdk, **props):
    return {"sdk": sdk, "run": run, **props}


# Segment: track, page, identify, then a batch of 1,000, then one the test proxy answers 503.
seg = Segment(write_key=key, host=host, upload_size=1000, upload_interval=1.0, on_error=on_error, max_retries=4)
sdk = "segment-python"
seg.track(
    user_id=f"jane+{run}@example.com",
    event="Signed Up",
    properties=tagged(sdk, plan="pro", email="jane@example.com", api_token="sk_live_abcdefghijklmnopqrstuvwx"),
    context={
        "ip": "81.2.69.142",
        "userAgent": UA,
        "page": {"url": "https://shop.example.com/signup?utm_source=newsletter"},
        "campaign": {"medium": "email", "name": "spring"},
    },
)
seg.track(anonymous_id=f"anon-{run}-py", event="Order Completed", properties=tagged(sdk, revenue=19.99, currency="EUR"))
seg.page(
    anonymous_id=f"anon-{run}-py",
    name="Pricing",
    properties=tagged(sdk, url="https://shop.example.com/pricing", referrer="https://www.google.com/", title="Pricing"),
)
seg.identify(user_id=f"jane+{run}@example.com", traits={"email": "jane@example.com", "name": "Jane Doe"})
seg.flush()
for i in range(1000):
    seg.track(anonymous_id=f"bulk-{run}-{i % 50}", event="bulk", properties=tagged(sdk, i=i))
seg.flush()
seg.track(anonymous_id=f"anon-{run}-py", event="retry-me", properties=tagged(sdk))
seg.flush()
seg.shutdown()

# PostHog: capture, a batch, an identify ($set), gzip.
ph = Posthog(key, host=host, gzip=True, flush_at=50, flush_interval=0.5, on_error=on_error, max_retries=3)
sdk = "posthog-python"
ph.capture("signed up", distinct_id=f"jane+{run}@example.com", properties=tagged(sdk, plan="team", **{"$ip": "81.2.69.142"}))
for i in range(120):
    ph.capture("bulk", distinct_id=f"ph-bulk-{run}-{i % 10}", properties=tagged(sdk, i=i))
ph.set(distinct_id=f"jane+{run}@example.com", properties={"email": "jane@example.com", "name": "Jane Doe"})
ph.flush()
ph.shutdown()

print(json.dumps({"failed": failed}))
