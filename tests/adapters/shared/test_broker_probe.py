"""The broker's probe connection: one long-lived connection for checks and queue depths, replaced when it breaks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from devstack.tcp_proxy import TcpProxy
from shared.broker import Broker
from shared.errors import Unavailable
from shared.settings import Settings
from shared.tasks import RUN_JOB

CHECKS = 5
RELISTEN_SECONDS = 0.3  # the proxy's listener is gone once its accept (polling every 50 ms) has noticed


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    """The machine's RabbitMQ behind a proxy that counts connections and can cut them."""
    with TcpProxy("127.0.0.1", 5672) as proxy:
        yield proxy


@pytest.fixture
def broker(settings: Settings, proxy: TcpProxy) -> Iterator[Broker]:
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
    broker = Broker(settings.model_copy(update={"rabbitmq_url": type(settings.rabbitmq_url)(url)}))
    yield broker
    broker.close()


def test_checks_and_queue_depths_share_one_connection(broker: Broker, proxy: TcpProxy) -> None:
    for _ in range(CHECKS):
        broker.ping()
        assert broker.queue_stats([RUN_JOB])[broker.queue(RUN_JOB)].keys() == {"messages", "consumers"}

    assert proxy.accepted == 1


def test_a_connection_cut_meanwhile_is_replaced_rather_than_reported_down(broker: Broker, proxy: TcpProxy) -> None:
    broker.ping()
    proxy.down()  # cuts the probe's connection, as a broker restart would
    time.sleep(RELISTEN_SECONDS)
    proxy.up()

    broker.ping()

    assert proxy.accepted == 2


def test_an_unreachable_broker_is_unavailable_and_a_returning_one_answers_again(
    broker: Broker, proxy: TcpProxy
) -> None:
    broker.ping()
    proxy.down()

    with pytest.raises(Unavailable, match="RabbitMQ does not answer"):
        broker.ping()
    time.sleep(RELISTEN_SECONDS)
    proxy.up()
    broker.ping()
