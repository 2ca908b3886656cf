"""Configuration a simulated charger exposes: 1.6 configuration keys, 2.0.1 device model.

Pure data plus validation; the charger reads the effective values (heartbeat interval, sample
interval, measurands) back from here, so what the central system sets is what it gets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: Measurands the simulated meter can produce.
SUPPORTED_MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Power.Offered",
    "Current.Import",
    "Current.Offered",
    "Voltage",
    "SoC",
)
DEFAULT_MEASURANDS = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,SoC"


def _is_int(value: str, lo: int = 0, hi: int | None = None) -> bool:
    try:
        number = int(value)
    except ValueError:
        return False
    return number >= lo and (hi is None or number <= hi)


def _is_member_list(value: str, allowed: tuple[str, ...]) -> bool:
    items = [v.strip() for v in value.split(",") if v.strip()]
    return all(v in allowed for v in items)


# --------------------------------------------------------------------------- OCPP 1.6


@dataclass
class ConfigKey:
    """One 1.6 configuration key."""

    value: str
    readonly: bool
    kind: str = "str"  # str | int | bool | measurands


class V16Config:
    """The configuration keys of a 1.6 charge point (Core + SmartCharging + RemoteTrigger)."""

    def __init__(
        self,
        *,
        connectors: int,
        heartbeat_interval_s: int,
        meter_interval_s: int,
        max_stack_level: int,
        max_periods: int,
        max_profiles: int,
        security_profile: int,
    ) -> None:
        rotation = ",".join(f"{i}.RST" for i in range(connectors + 1))
        self.keys: dict[str, ConfigKey] = {
            "AllowOfflineTxForUnknownId": ConfigKey("true", False, "bool"),
            "AuthorizationCacheEnabled": ConfigKey("false", False, "bool"),
            "AuthorizeRemoteTxRequests": ConfigKey("false", False, "bool"),
            "ClockAlignedDataInterval": ConfigKey("0", False, "int"),
            "ConnectionTimeOut": ConfigKey("90", False, "int"),
            "ConnectorPhaseRotation": ConfigKey(rotation, False),
            "GetConfigurationMaxKeys": ConfigKey("64", True, "int"),
            "HeartbeatInterval": ConfigKey(str(heartbeat_interval_s), False, "int"),
            "LocalAuthorizeOffline": ConfigKey("true", False, "bool"),
            "LocalPreAuthorize": ConfigKey("false", False, "bool"),
            "MeterValuesAlignedData": ConfigKey(
                "Energy.Active.Import.Register", False, "measurands"
            ),
            "MeterValuesSampledData": ConfigKey(DEFAULT_MEASURANDS, False, "measurands"),
            "MeterValueSampleInterval": ConfigKey(str(meter_interval_s), False, "int"),
            "NumberOfConnectors": ConfigKey(str(connectors), True, "int"),
            "ResetRetries": ConfigKey("3", False, "int"),
            "StopTransactionOnEVSideDisconnect": ConfigKey("true", False, "bool"),
            "StopTransactionOnInvalidId": ConfigKey("true", False, "bool"),
            "StopTxnAlignedData": ConfigKey("", False, "measurands"),
            "StopTxnSampledData": ConfigKey("Energy.Active.Import.Register", False, "measurands"),
            "SupportedFeatureProfiles": ConfigKey("Core,SmartCharging,RemoteTrigger", True),
            "TransactionMessageAttempts": ConfigKey("3", False, "int"),
            "TransactionMessageRetryInterval": ConfigKey("30", False, "int"),
            "UnlockConnectorOnEVSideDisconnect": ConfigKey("true", False, "bool"),
            "WebSocketPingInterval": ConfigKey("20", False, "int"),
            "ChargeProfileMaxStackLevel": ConfigKey(str(max_stack_level), True, "int"),
            "ChargingScheduleAllowedChargingRateUnit": ConfigKey("Current,Power", True),
            "ChargingScheduleMaxPeriods": ConfigKey(str(max_periods), True, "int"),
            "ConnectorSwitch3to1PhaseSupported": ConfigKey("false", True, "bool"),
            "MaxChargingProfilesInstalled": ConfigKey(str(max_profiles), True, "int"),
            "SecurityProfile": ConfigKey(str(security_profile), True, "int"),
        }

    def get(self, key: str) -> str:
        """Current value of `key`."""
        return self.keys[key].value

    def get_int(self, key: str) -> int:
        """Current value of an integer key."""
        return int(self.keys[key].value)

    def change(self, key: str, value: str) -> str:
        """Apply ChangeConfiguration; return the 1.6 ConfigurationStatus."""
        entry = self.keys.get(key)
        if entry is None:
            return "NotSupported"
        if entry.readonly:
            return "Rejected"
        valid = {
            "int": lambda v: _is_int(v),
            "bool": lambda v: v.lower() in ("true", "false"),
            "measurands": lambda v: _is_member_list(v, SUPPORTED_MEASURANDS),
            "str": lambda v: len(v) <= 500,
        }[entry.kind](value)
        if not valid:
            return "Rejected"
        entry.value = value.lower() if entry.kind == "bool" else value
        return "Accepted"

    def report(self, keys: list[str] | None) -> dict:
        """GetConfiguration.conf payload for `keys` (all when None or empty)."""
        wanted = keys or list(self.keys)
        known = [
            {"key": k, "readonly": self.keys[k].readonly, "value": self.keys[k].value}
            for k in wanted
            if k in self.keys
        ]
        unknown = [k[:50] for k in wanted if k not in self.keys]
        payload: dict = {"configurationKey": known}
        if unknown:
            payload["unknownKey"] = unknown
        return payload


# --------------------------------------------------------------------------- OCPP 2.0.1


@dataclass
class Variable:
    """One variable of the 2.0.1 device model (Actual attribute only)."""

    component: str
    name: str
    value: str | Callable[[], str]
    mutability: str = "ReadWrite"
    data_type: str = "string"
    evse: int | None = None
    connector: int | None = None
    instance: str | None = None
    component_instance: str | None = None
    unit: str | None = None
    values_list: str | None = None
    max_limit: float | None = None
    min_limit: float | None = None

    def actual(self) -> str:
        """The Actual value as a string."""
        return self.value() if callable(self.value) else self.value

    def valid(self, value: str) -> bool:
        """True if `value` fits this variable's data type and limits."""
        if self.data_type == "integer":
            lo = int(self.min_limit) if self.min_limit is not None else 0
            hi = int(self.max_limit) if self.max_limit is not None else None
            return _is_int(value, lo, hi)
        if self.data_type == "decimal":
            try:
                float(value)
            except ValueError:
                return False
            return True
        if self.data_type == "boolean":
            return value.lower() in ("true", "false")
        if self.data_type in ("MemberList", "SequenceList"):
            allowed = tuple((self.values_list or "").split(","))
            return _is_member_list(value, allowed)
        if self.data_type == "OptionList":
            return value in (self.values_list or "").split(",")
        return len(value) <= 1000

    def report_data(self) -> dict:
        """The ReportDataType entry of NotifyReport for this variable."""
        component: dict = {"name": self.component}
        if self.component_instance:
            component["instance"] = self.component_instance
        if self.evse is not None:
            component["evse"] = {"id": self.evse}
            if self.connector is not None:
                component["evse"]["connectorId"] = self.connector
        variable: dict = {"name": self.name}
        if self.instance:
            variable["instance"] = self.instance
        attribute: dict = {
            "type": "Actual",
            "mutability": self.mutability,
            "persistent": True,
            "constant": self.mutability == "ReadOnly",
        }
        if self.mutability != "WriteOnly":
            attribute["value"] = self.actual()[:2500]
        characteristics: dict = {"dataType": self.data_type, "supportsMonitoring": False}
        if self.unit:
            characteristics["unit"] = self.unit
        if self.values_list:
            characteristics["valuesList"] = self.values_list
        if self.max_limit is not None:
            characteristics["maxLimit"] = self.max_limit
        if self.min_limit is not None:
            characteristics["minLimit"] = self.min_limit
        return {
            "component": component,
            "variable": variable,
            "variableAttribute": [attribute],
            "variableCharacteristics": characteristics,
        }


Key = tuple[str, str | None, int | None, int | None, str, str | None]


class DeviceModel:
    """The components and variables of a 2.0.1 charging station."""

    def __init__(self) -> None:
        self._vars: dict[Key, Variable] = {}

    @staticmethod
    def _key(
        component: str,
        name: str,
        *,
        evse: int | None = None,
        connector: int | None = None,
        instance: str | None = None,
        component_instance: str | None = None,
    ) -> Key:
        return (component, component_instance, evse, connector, name, instance)

    def add(self, var: Variable) -> None:
        """Add (or replace) a variable."""
        key = self._key(
            var.component,
            var.name,
            evse=var.evse,
            connector=var.connector,
            instance=var.instance,
            component_instance=var.component_instance,
        )
        self._vars[key] = var

    def __iter__(self) -> Iterator[Variable]:
        return iter(self._vars.values())

    def find(self, component: dict, variable: dict) -> tuple[str, Variable | None]:
        """Look up a ComponentType/VariableType pair; return (status, variable)."""
        evse = component.get("evse") or {}
        key = self._key(
            component["name"],
            variable["name"],
            evse=evse.get("id"),
            connector=evse.get("connectorId"),
            instance=variable.get("instance"),
            component_instance=component.get("instance"),
        )
        var = self._vars.get(key)
        if var is not None:
            return "Accepted", var
        component_known = any(
            k[0] == key[0] and k[1] == key[1] and k[2] == key[2] and k[3] == key[3]
            for k in self._vars
        )
        return ("UnknownVariable" if component_known else "UnknownComponent"), None

    def get(self, component: str, name: str, **where: object) -> Variable:
        """Fetch a variable the charger itself relies on (raises KeyError if absent)."""
        return self._vars[self._key(component, name, **where)]  # type: ignore[arg-type]

    def value(self, component: str, name: str, **where: object) -> str:
        """Actual value of a variable the charger itself relies on."""
        return self.get(component, name, **where).actual()


def build_device_model(
    *,
    cp_id: str,
    evses: int,
    evse_max_w: list[float],
    phases: int,
    heartbeat_interval_s: int,
    meter_interval_s: int,
    max_stack_level: int,
    max_periods: int,
    max_profiles: int,
    security_profile: int,
    profile_count: Callable[[], str],
    availability: Callable[[int | None], str],
    date_time: Callable[[], str],
) -> DeviceModel:
    """The device model of the simulated station (a realistic subset of the 2.0.1 appendix)."""
    dm = DeviceModel()
    ro = "ReadOnly"
    measurands = ",".join(SUPPORTED_MEASURANDS)

    def add(component: str, name: str, value: str | Callable[[], str], **kw: object) -> None:
        dm.add(Variable(component, name, value, **kw))  # type: ignore[arg-type]

    add("ChargingStation", "AvailabilityState", lambda: availability(None), mutability=ro,
        data_type="OptionList", values_list="Available,Occupied,Reserved,Unavailable,Faulted")
    add("ChargingStation", "Available", "true", mutability=ro, data_type="boolean")
    add("ChargingStation", "SupplyPhases", str(phases), mutability=ro, data_type="integer")
    for evse in range(1, evses + 1):
        add("EVSE", "AvailabilityState", (lambda e=evse: availability(e)), mutability=ro,
            data_type="OptionList", evse=evse,
            values_list="Available,Occupied,Reserved,Unavailable,Faulted")
        add("EVSE", "Available", "true", mutability=ro, data_type="boolean", evse=evse)
        add("EVSE", "Power", f"{evse_max_w[evse - 1]:.0f}", mutability=ro, data_type="decimal",
            evse=evse, unit="W", max_limit=evse_max_w[evse - 1])
        add("EVSE", "SupplyPhases", str(phases), mutability=ro, data_type="integer", evse=evse)
        add("Connector", "ConnectorType", "cType2", mutability=ro, data_type="string",
            evse=evse, connector=1)
        add("Connector", "AvailabilityState", (lambda e=evse: availability(e)), mutability=ro,
            data_type="OptionList", evse=evse, connector=1,
            values_list="Available,Occupied,Reserved,Unavailable,Faulted")
    add("OCPPCommCtrlr", "HeartbeatInterval", str(heartbeat_interval_s), data_type="integer",
        unit="s")
    add("OCPPCommCtrlr", "MessageTimeout", "30", mutability=ro, data_type="integer",
        instance="Default", unit="s")
    add("OCPPCommCtrlr", "MessageAttempts", "3", data_type="integer", instance="TransactionEvent")
    add("OCPPCommCtrlr", "MessageAttemptInterval", "30", data_type="integer",
        instance="TransactionEvent", unit="s")
    add("OCPPCommCtrlr", "NetworkConfigurationPriority", "0", data_type="SequenceList",
        values_list="0")
    add("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "3", data_type="integer")
    add("OCPPCommCtrlr", "OfflineThreshold", "60", data_type="integer", unit="s")
    add("OCPPCommCtrlr", "ResetRetries", "2", data_type="integer")
    add("OCPPCommCtrlr", "RetryBackOffRandomRange", "10", data_type="integer", unit="s")
    add("OCPPCommCtrlr", "RetryBackOffRepeatTimes", "5", data_type="integer")
    add("OCPPCommCtrlr", "RetryBackOffWaitMinimum", "1", data_type="integer", unit="s")
    add("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", "true", data_type="boolean")
    add("OCPPCommCtrlr", "WebSocketPingInterval", "20", data_type="integer", unit="s")
    add("OCPPCommCtrlr", "FileTransferProtocols", "HTTPS", mutability=ro,
        data_type="MemberList", values_list="FTP,FTPS,HTTP,HTTPS,SFTP")
    add("SampledDataCtrlr", "Enabled", "true", data_type="boolean")
    add("SampledDataCtrlr", "TxUpdatedInterval", str(meter_interval_s), data_type="integer",
        unit="s")
    add("SampledDataCtrlr", "TxUpdatedMeasurands", DEFAULT_MEASURANDS, data_type="MemberList",
        values_list=measurands)
    add("SampledDataCtrlr", "TxStartedMeasurands", "Energy.Active.Import.Register",
        data_type="MemberList", values_list=measurands)
    add("SampledDataCtrlr", "TxEndedMeasurands", "Energy.Active.Import.Register",
        data_type="MemberList", values_list=measurands)
    add("SampledDataCtrlr", "TxEndedInterval", "0", data_type="integer", unit="s")
    add("SampledDataCtrlr", "RegisterValuesWithoutPhases", "true", mutability=ro,
        data_type="boolean")
    add("AlignedDataCtrlr", "Enabled", "false", data_type="boolean")
    add("AlignedDataCtrlr", "Interval", "0", data_type="integer", unit="s")
    add("AlignedDataCtrlr", "Measurands", "Energy.Active.Import.Register", data_type="MemberList",
        values_list=measurands)
    add("AlignedDataCtrlr", "TxEndedInterval", "0", data_type="integer", unit="s")
    add("AlignedDataCtrlr", "TxEndedMeasurands", "Energy.Active.Import.Register",
        data_type="MemberList", values_list=measurands)
    add("SmartChargingCtrlr", "Enabled", "true", data_type="boolean")
    add("SmartChargingCtrlr", "Available", "true", mutability=ro, data_type="boolean")
    add("SmartChargingCtrlr", "Entries", profile_count, mutability=ro, data_type="integer",
        instance="ChargingProfiles", max_limit=max_profiles)
    add("SmartChargingCtrlr", "LimitChangeSignificance", "1.0", data_type="decimal")
    add("SmartChargingCtrlr", "PeriodsPerSchedule", str(max_periods), mutability=ro,
        data_type="integer")
    add("SmartChargingCtrlr", "ProfileStackLevel", str(max_stack_level), mutability=ro,
        data_type="integer")
    add("SmartChargingCtrlr", "RateUnit", "A,W", mutability=ro, data_type="MemberList",
        values_list="A,W")
    add("SmartChargingCtrlr", "ExternalControlSignalsEnabled", "false", data_type="boolean")
    add("SmartChargingCtrlr", "NotifyChargingLimitWithSchedules", "false", data_type="boolean")
    add("SmartChargingCtrlr", "Phases3to1", "false", mutability=ro, data_type="boolean")
    add("TxCtrlr", "EVConnectionTimeOut", "90", data_type="integer", unit="s")
    add("TxCtrlr", "StopTxOnEVSideDisconnect", "true", mutability=ro, data_type="boolean")
    add("TxCtrlr", "StopTxOnInvalidId", "true", data_type="boolean")
    add("TxCtrlr", "TxStartPoint", "Authorized,EVConnected", mutability=ro,
        data_type="MemberList",
        values_list="ParkingBayOccupancy,EVConnected,Authorized,PowerPathClosed,EnergyTransfer")
    add("TxCtrlr", "TxStopPoint", "EVConnected,Authorized", mutability=ro,
        data_type="MemberList",
        values_list="ParkingBayOccupancy,EVConnected,Authorized,PowerPathClosed,EnergyTransfer")
    add("TxCtrlr", "MaxEnergyOnInvalidId", "0", data_type="integer", unit="Wh")
    add("AuthCtrlr", "Enabled", "true", data_type="boolean")
    add("AuthCtrlr", "AuthorizeRemoteStart", "false", data_type="boolean")
    add("AuthCtrlr", "LocalAuthorizeOffline", "true", data_type="boolean")
    add("AuthCtrlr", "LocalPreAuthorize", "false", data_type="boolean")
    add("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true", data_type="boolean")
    add("DeviceDataCtrlr", "ItemsPerMessage", "100", mutability=ro, data_type="integer",
        instance="GetVariables")
    add("DeviceDataCtrlr", "ItemsPerMessage", "100", mutability=ro, data_type="integer",
        instance="SetVariables")
    add("DeviceDataCtrlr", "ItemsPerMessage", "50", mutability=ro, data_type="integer",
        instance="GetReport")
    add("DeviceDataCtrlr", "BytesPerMessage", "65000", mutability=ro, data_type="integer",
        instance="GetVariables")
    add("DeviceDataCtrlr", "BytesPerMessage", "65000", mutability=ro, data_type="integer",
        instance="SetVariables")
    add("DeviceDataCtrlr", "BytesPerMessage", "65000", mutability=ro, data_type="integer",
        instance="GetReport")
    add("ClockCtrlr", "DateTime", date_time, mutability=ro, data_type="dateTime")
    add("ClockCtrlr", "TimeSource", "Heartbeat", data_type="SequenceList",
        values_list="Heartbeat,NTP,GPS,RealTimeClock,MobileNetwork,RadioTimeTransmitter")
    add("SecurityCtrlr", "SecurityProfile", str(security_profile), mutability=ro,
        data_type="integer")
    add("SecurityCtrlr", "Identity", cp_id, mutability=ro, data_type="string")
    add("SecurityCtrlr", "OrganizationName", "Loadstar Simulators", data_type="string")
    add("SecurityCtrlr", "CertificateEntries", "0", mutability=ro, data_type="integer")
    return dm
