"""Fault injection into the simulated campus (``houqin demo`` / ``run --simulate``). Staff and admins only;
404 when houqin talks to real devices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel

from api.deps import SimulatorDep, StaffUser
from houqin.simulation import FAULTS, FaultInjector, UnknownDevice

router = APIRouter(prefix="/api/v1/simulation", tags=["simulation"])


class FaultIn(BaseModel):
    device: str
    fault: str
    active: bool = True


async def _injector(injector: SimulatorDep) -> FaultInjector:
    if injector is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "houqin is not simulating devices")
    return injector


InjectorDep = Annotated[FaultInjector, Depends(_injector)]


@router.get("/faults", summary="Active simulated faults (staff, admin)")
async def list_faults(_user: StaffUser, injector: InjectorDep) -> dict[str, object]:
    return {"faults": injector.active_faults(), "known": list(FAULTS)}


@router.post("/faults", summary="Start or end a simulated fault (staff, admin)")
async def set_fault(body: FaultIn, _user: StaffUser, injector: InjectorDep) -> dict[str, object]:
    if body.fault not in FAULTS:
        raise HTTPException(422, f"unknown fault {body.fault!r}; one of {', '.join(FAULTS)}")
    try:
        injector.inject(body.device, body.fault, body.active)
    except UnknownDevice:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no simulated device {body.device!r}") from None
    return {"faults": injector.active_faults()}


@router.get("/devices/{device_id}", summary="What a simulated device holds now, by its own account (staff, admin)")
async def read_device(device_id: str, _user: StaffUser, injector: InjectorDep) -> dict[str, Any]:
    try:
        return {"device": device_id, "state": injector.device_state(device_id)}
    except UnknownDevice:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no simulated device {device_id!r}") from None
