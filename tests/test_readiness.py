"""/readyz checks against a real Mosquitto (open and password-protected) and a real influxd."""

from __future__ import annotations

from houqin.readiness import Readiness, influx_check, mqtt_broker_check
from houqin.settings import InfluxSettings
from tests.servers import Influxd, Mosquitto, free_port, mosquitto_server


async def test_ready_when_broker_and_influx_answer(mosquitto: Mosquitto, influxd: Influxd) -> None:
    readiness = Readiness()
    readiness.add("mqtt_broker", mqtt_broker_check(f"mqtt://127.0.0.1:{mosquitto.port}"))
    readiness.add("influxdb", influx_check(InfluxSettings(url=influxd.url)))
    results = await readiness.run()
    assert [(r.name, r.ok) for r in results] == [("mqtt_broker", True), ("influxdb", True)]


async def test_not_ready_when_servers_are_down() -> None:
    readiness = Readiness(timeout=2)
    readiness.add("mqtt_broker", mqtt_broker_check(f"mqtt://127.0.0.1:{free_port()}"))
    readiness.add("influxdb", influx_check(InfluxSettings(url=f"http://127.0.0.1:{free_port()}")))
    results = await readiness.run()
    assert not any(r.ok for r in results)
    assert all(r.detail for r in results)


async def test_broker_credentials_are_checked() -> None:
    with mosquitto_server(users={"houqin": "broker-secret"}) as broker:
        readiness = Readiness()
        readiness.add("good", mqtt_broker_check(f"mqtt://houqin:broker-secret@127.0.0.1:{broker.port}"))
        readiness.add("bad", mqtt_broker_check(f"mqtt://houqin:wrong@127.0.0.1:{broker.port}"))
        results = {r.name: r for r in await readiness.run()}
        assert results["good"].ok
        assert not results["bad"].ok
        assert "Not authorized" in results["bad"].detail
