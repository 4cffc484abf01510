"""A simulated PBX that speaks real AMI over TCP (DESIGN §4): `dialer pbx-sim`, and the tests' Asterisk.

It accepts the daemon's Originate (`Channel: Local/<number>@dialer-trunk`, `Context: dialer-outbound`,
`Exten: s`, `Async: true`) and plays the customer behind the number and the operators of one queue,
emitting the events a real Asterisk 22 emits for the same call (tests/fixtures/ami).
"""

from dialer.pbx_sim.calls import CallRecord, CallResult
from dialer.pbx_sim.operators import DeviceState, OperatorSpec, numbered_operators
from dialer.pbx_sim.scenarios import CustomerBook, CustomerMix, CustomerPlan, CustomerRule, Outcome
from dialer.pbx_sim.server import OperatorStats, PbxConfig, PbxStats, PbxUser, SimulatedPbx

__all__ = [
    "CallRecord", "CallResult", "CustomerBook", "CustomerMix", "CustomerPlan", "CustomerRule", "DeviceState",
    "OperatorSpec", "OperatorStats", "Outcome", "PbxConfig", "PbxStats", "PbxUser", "SimulatedPbx",
    "numbered_operators",
]
