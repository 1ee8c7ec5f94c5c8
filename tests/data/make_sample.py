"""Writes sample.ndjson: three discharge stations and two cameras over three hours of
2026-11-17 (UTC), with the incidents that tests/replay.rs expects, plus bad lines.
Run: python3 tests/data/make_sample.py > tests/data/sample.ndjson"""
import json

BASE = 1794873600000  # 2026-11-17T00:00:00Z
MIN = 60_000
lines = []


def reading(source, minute, values, status=None):
    env = {"source": source, "kind": "discharge", "ts": BASE + minute * MIN, "values": values}
    if status:
        env["status"] = status
    return json.dumps(env, separators=(",", ":"))


for minute in range(0, 180, 5):
    hour = minute // 60
    # CT-TN-01: COD 60 in hour 0, 160 in hour 1 (Cmax 135), 100 in hour 2 (clears below 121.5).
    cod = [60.0, 160.0, 100.0][hour]
    if minute in (20, 25):
        lines.append(reading("CT-TN-01", minute, {"cod": 500.0, "ph": 7.1}, status="01"))
    else:
        lines.append(reading("CT-TN-01", minute, {"cod": cod, "ph": 7.1}))
    # CT-TN-02: COD well under its limit; pH crash at 01:30 and 01:35.
    ph = 4.8 if minute in (90, 95) else 7.0
    lines.append(reading("CT-TN-02", minute, {"cod": 80.0, "ph": ph}))
    if minute == 60:
        lines.append(lines[-1])  # duplicate delivery
    # CT-TN-03: silent from 01:00 to 01:55.
    if not (60 <= minute < 120):
        lines.append(reading("CT-TN-03", minute, {"cod": 50.0, "ph": 7.4}))
    if minute == 40:
        lines.append(json.dumps({"source": "CAM-01", "kind": "camera", "ts": "2026-11-17T00:42:00Z",
                                 "event": "fire_smoke", "confidence": 0.93, "lat": 10.03, "lon": 105.77}))
        lines.append(json.dumps({"source": "CAM-02", "kind": "camera", "ts": "2026-11-17T00:43:00Z",
                                 "event": "fire_smoke", "confidence": 0.4}))
    if minute == 50:
        lines.append('{"source":"CT-TN-09","kind":"discharge","ts":')  # truncated
        lines.append('{"source":"CT-TN-09","kind":"discharge","ts":1794876600000,"values":{"cod":"NaN"}}')
        lines.append('{"source":"CT-TN-09","kind":"sewage","ts":1794876600000,"values":{"cod":1}}')
        lines.append('{"source":"CT-TN-09","kind":"discharge","ts":"2031-01-01T00:00:00Z","values":{"cod":1}}')
# A reading three hours late.
lines.append(reading("CT-TN-01", 10, {"cod": 999.0, "ph": 7.1}))
print("\n".join(lines))
