"""Device and its link to the patient: DeviceAssociation in R5, ``Device.patient`` in R4.

All DeviceAssociation shape knowledge lives in this module (R6 renames fields again). Devices
are identified per link (``<link scope>:<provider device id>`` in the provider's device
namespace), so a shared scale is one Device per linked patient, never one patient's device
attached to another.
"""

from __future__ import annotations

from typing import Any

from ohe.fhir.builders import BuildContext, Resource
from ohe.samples import DeviceRef

ASSOCIATION_STATUS_SYSTEM = "http://hl7.org/fhir/deviceassociation-status"


def build_device(device: DeviceRef, ctx: BuildContext, *, with_state: bool = True) -> Resource:
    """A Device; ``with_state=False`` leaves out changing facts (battery) for observation bundles.

    Observation bundles create the Device only if it is missing (conditional create), so the
    device sync's fuller version is never overwritten by a thinner one.
    """
    resource: Resource = {
        "resourceType": "Device",
        "meta": ctx.meta,
        "identifier": [ctx.identifier("device", device.device_id)],
        "status": "active" if device.active else "inactive",
        "manufacturer": device.manufacturer,
    }
    if ctx.version == "R5":
        if device.model:
            resource["displayName"] = device.model
            resource["name"] = [{"value": device.model, "type": "registered-name"}]
        if device.kind:
            resource["type"] = [{"text": device.kind}]
    else:
        if device.model:
            resource["deviceName"] = [{"name": device.model, "type": "model-name"}]
        if device.kind:
            resource["type"] = {"text": device.kind}
        if device.active:
            resource["patient"] = ctx.subject
    if device.model_number:
        resource["modelNumber"] = device.model_number
    if with_state and device.battery:
        resource["property"] = [_battery(device.battery, ctx.version)]
    return resource


def _battery(level: str, version: str) -> dict[str, Any]:
    kind = {"text": "battery level"}
    if version == "R5":
        return {"type": kind, "valueCodeableConcept": {"text": level}}
    return {"type": kind, "valueCode": [{"text": level}]}


def build_association(device: DeviceRef, ctx: BuildContext, device_reference: str) -> Resource:
    """R5 only: the patient wears/uses the device (``attached``) or no longer does (ended)."""
    if ctx.version != "R5":
        raise ValueError("DeviceAssociation exists only in R5; R4 uses Device.patient")
    period: dict[str, str] = {}
    if device.first_seen is not None:
        period["start"] = device.first_seen.isoformat()
    association: Resource = {
        "resourceType": "DeviceAssociation",
        "meta": ctx.meta,
        "identifier": [ctx.identifier("device-association", device.device_id)],
        "device": {"reference": device_reference},
        "category": [{"text": "home use"}],
        "status": {
            "coding": [
                {
                    "system": ASSOCIATION_STATUS_SYSTEM,
                    "code": "attached" if device.active else "explanted",
                    "display": "Attached" if device.active else "Explanted",
                }
            ]
        },
        "subject": ctx.subject,
    }
    if period:
        association["period"] = period
    return association


def end_association(association: Resource, ended_at: str) -> Resource:
    """The same association, ended: status explanted with ``period.end`` (keeps the history)."""
    ended = {**association, "period": {**association.get("period", {}), "end": ended_at}}
    ended["status"] = {
        "coding": [
            {"system": ASSOCIATION_STATUS_SYSTEM, "code": "explanted", "display": "Explanted"}
        ]
    }
    return ended
