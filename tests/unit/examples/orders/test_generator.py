from collections import Counter, defaultdict

import msgspec

from examples.orders import schemas as orders
from examples.orders.generator import OrderGenerator


def test_same_seed_same_commands():
    assert OrderGenerator(seed=7).take(500) == OrderGenerator(seed=7).take(500)
    assert OrderGenerator(seed=7).take(50) != OrderGenerator(seed=8).take(50)


def test_every_command_matches_its_schema_and_key():
    for command in OrderGenerator(seed=1).take(3000):
        schema = orders.SCHEMAS.get(command.type, command.v)
        assert schema is not None
        data = msgspec.convert(command.data, schema.data)
        assert data.order_id == command.aggregate_id


def test_orders_follow_a_realistic_life():
    commands = OrderGenerator(seed=2).take(20_000)
    lives = defaultdict(list)
    for c in commands:
        lives[c.aggregate_id].append(c)
    allowed = {
        (orders.PLACED,),
        (orders.PLACED, orders.PAID),
        (orders.PLACED, orders.CANCELLED),
        (orders.PLACED, orders.PAID, orders.SHIPPED),
        (orders.PLACED, orders.PAID, orders.CANCELLED),
    }
    for life in lives.values():
        assert tuple(c.type for c in life) in allowed
        assert [c.ts for c in life] == sorted(c.ts for c in life)
    types = Counter(c.type for c in commands)
    assert types[orders.SHIPPED] > types[orders.CANCELLED] > 0
    assert len({c.id for c in commands}) == len(commands)
    customers = {c.data["customer_id"] for c in commands if c.type == orders.PLACED}
    assert any(cust.startswith("test-") for cust in customers)


def test_event_time_follows_the_step():
    commands = OrderGenerator(seed=3, start_ms=1_000_000, step_ms=10).take(10_000)
    span = commands[-1].ts - commands[0].ts
    assert 80_000 < span < 120_000  # about 10 ms per command
