"""hipsense reference firmware: Seeed XIAO nRF52840 Sense, CircuitPython 9 or later.

The board part only: pins, the IMU, the BLE objects and the main loop. Every protocol
decision is in hipsense_fw (tested on the host); this file moves bytes between it and
the hardware. NOT RUN ON HARDWARE by its authors: see README.md.
"""

import struct
import time

import _bleio
import analogio
import board
import busio
import digitalio
from adafruit_ble import BLERadio
from adafruit_ble.advertising import Advertisement
from adafruit_ble.advertising.standard import ProvideServicesAdvertisement, ServiceData
from adafruit_ble.characteristics import Characteristic, ComplexCharacteristic
from adafruit_ble.services import Service
from adafruit_ble.services.standard import BatteryService
from adafruit_ble.services.standard.device_info import DeviceInfoService
from adafruit_ble.uuid import VendorUUID
from adafruit_lsm6ds.lsm6ds3trc import LSM6DS3TRC
from hipsense_fw import protocol as hs
from hipsense_fw.sensor import Sensor

FIRMWARE = (1, 0, 0)
BACKLOG_PACKETS = 64  # 64 x 244 bytes of RAM: 12 s at 100 Hz RAW, MTU 247
SENDS_PER_LOOP = 4  # notifications per loop pass, so sampling is never starved
BATTERY_EVERY_US = 10_000_000
CONNECTION_INTERVAL_MS = 15  # PROTOCOL.md 3.3: 7.5-15 ms

# LSM6DS3TR-C registers (datasheet DocID030071): CTRL1_XL = ODR_XL[7:4] FS_XL[3:2],
# CTRL2_G = ODR_G[7:4] FS_G[3:2] FS_125[1]; the outputs from OUTX_L_G are gyro x, y, z
# then accel x, y, z, 12 bytes in one read (address auto-increment is on after reset).
_CTRL1_XL = bytes((0x10,))
_OUTX_L_G = bytes((0x22,))
# The IMU samples faster than the stream and the loop takes its newest output at each
# sample time: at 4x the stream rate a sample is at most a quarter period old.
_ODR = {25: 0x40, 50: 0x50, 100: 0x60, 200: 0x70}  # 104, 208, 416, 833 Hz
_FS_XL = {2: 0x00, 16: 0x04, 4: 0x08, 8: 0x0C}
_FS_G = {125: 0x02, 250: 0x00, 500: 0x04, 1000: 0x08, 2000: 0x0C}


class _ControlPointCharacteristic(ComplexCharacteristic):
    """Write with response, indicate: writes are queued so none is missed or merged."""

    uuid = VendorUUID(hs.CONTROL_POINT_UUID)

    def __init__(self):
        super().__init__(
            properties=Characteristic.WRITE | Characteristic.INDICATE,
            max_length=11,  # the longest response (TIME_SYNC)
        )

    def bind(self, service):
        """Bind to the service: the characteristic and a buffer of incoming writes."""
        characteristic = super().bind(service)
        return (characteristic, _bleio.PacketBuffer(characteristic, buffer_size=4))


class HipsenseService(Service):
    """The hipsense GATT service (PROTOCOL.md 2.1)."""

    uuid = VendorUUID(hs.SERVICE_UUID)
    imu_data = Characteristic(
        uuid=VendorUUID(hs.IMU_DATA_UUID),
        properties=Characteristic.NOTIFY,
        max_length=hs.MAX_ATT_PAYLOAD,
        fixed_length=False,
    )
    control_point = _ControlPointCharacteristic()
    status = Characteristic(
        uuid=VendorUUID(hs.STATUS_UUID),
        properties=Characteristic.READ | Characteristic.NOTIFY,
        max_length=hs.STATUS_SIZE,
        fixed_length=True,
    )


class HipsenseAdvertisement(ProvideServicesAdvertisement):
    """Service UUID and battery level as Battery service data (PROTOCOL.md 2.1)."""

    battery = ServiceData(BatteryService)


def _imu_power_on():
    # The Sense board powers the IMU from a GPIO: nothing answers on I2C until it is high.
    pwr = digitalio.DigitalInOut(board.IMU_PWR)
    pwr.switch_to_output(value=True)
    time.sleep(0.05)
    return pwr


class Imu:
    """The LSM6DS3TR-C on the board's internal I2C bus, read as raw counts."""

    def __init__(self):
        self._power = _imu_power_on()
        i2c = busio.I2C(board.IMU_SCL, board.IMU_SDA, frequency=400_000)
        self.chip = LSM6DS3TRC(i2c)
        self._buf = bytearray(12)
        self._ctrl = bytearray(2)

    def configure(self, rate_hz, accel_range_g, gyro_range_dps):
        """Set rate and ranges; False if the IMU did not take them (read back differs).

        Written to the registers directly: the driver's range setters sleep 0.2 s each
        and read back only their own cache.
        """
        odr = _ODR[rate_hz]
        ctrl = bytes((_CTRL1_XL[0], odr | _FS_XL[accel_range_g], odr | _FS_G[gyro_range_dps]))
        with self.chip.i2c_device as i2c:
            i2c.write(ctrl)
            i2c.write_then_readinto(_CTRL1_XL, self._ctrl)
        return self._ctrl[0] == ctrl[1] and self._ctrl[1] == ctrl[2]

    def read(self):
        """(ax, ay, az, gx, gy, gz) counts at the configured ranges."""
        with self.chip.i2c_device as i2c:
            i2c.write_then_readinto(_OUTX_L_G, self._buf)
        gx, gy, gz, ax, ay, az = struct.unpack("<6h", self._buf)
        return (ax, ay, az, gx, gy, gz)


class Battery:
    """LiPo voltage through the board's divider, mapped linearly to percent (rough)."""

    def __init__(self):
        # P0.14 low enables the divider; it stays low (Seeed's advice: high exposes the
        # ADC pin to the battery voltage).
        self._enable = digitalio.DigitalInOut(board.READ_BATT_ENABLE)
        self._enable.switch_to_output(value=False)
        self._adc = analogio.AnalogIn(board.VBATT)

    def percent(self):
        """Battery level 0..100, or None if the reading makes no sense (no battery)."""
        volts = self._adc.value / 65535 * self._adc.reference_voltage * 1510 / 510
        if volts < 2.5 or volts > 4.5:
            return None
        return max(0, min(100, round((volts - 3.3) / (4.2 - 3.3) * 100)))


def main():
    """Set up, then loop: link events, control point, sampling, sending."""
    boot_ns = time.monotonic_ns()

    def now_us():
        return (time.monotonic_ns() - boot_ns) // 1000

    try:
        imu = Imu()
    except (OSError, RuntimeError, ValueError):
        imu = None  # no IMU: advertise anyway, so the host can read IMU_FAULT

    def configure(rate_hz, accel_range_g, gyro_range_dps):
        return imu is not None and imu.configure(rate_hz, accel_range_g, gyro_range_dps)

    battery = Battery()
    sensor = Sensor(firmware=FIRMWARE, backlog_packets=BACKLOG_PACKETS, configure=configure)
    try:
        sensor.set_imu_fault(
            not configure(sensor.rate_hz, sensor.accel_range_g, sensor.gyro_range_dps)
        )
    except OSError:
        sensor.set_imu_fault(True)
    sensor.set_battery(battery.percent())

    ble = BLERadio()
    addr = ble.address_bytes  # little-endian: the displayed address's last byte first
    ble.name = f"hipsense-{addr[1]:02X}{addr[0]:02X}"
    service = HipsenseService(status=sensor.status())
    cp_characteristic, cp_writes = service.control_point
    power = BatteryService()
    power.level = sensor.battery_pct if sensor.battery_pct <= 100 else 0
    _info = DeviceInfoService(
        manufacturer="hipsense",
        model_number="XIAO nRF52840 Sense",
        firmware_revision="{}.{}.{}".format(*FIRMWARE),
    )
    adv = HipsenseAdvertisement(service)
    scan_response = Advertisement()
    scan_response.complete_name = ble.name

    def advertise():
        if ble.advertising:
            ble.stop_advertising()
        pct = sensor.battery_pct
        adv.battery = bytearray((pct if pct <= 100 else 0,))
        ble.start_advertising(adv, scan_response=scan_response)

    led = digitalio.DigitalInOut(board.LED_BLUE)
    led.switch_to_output(value=True)  # active low: off
    command = bytearray(11)
    connected = False
    next_battery_us = now_us() + BATTERY_EVERY_US
    advertise()

    while True:
        now = now_us()
        # -- link events --
        if ble.connected != connected:
            connected = ble.connected
            if connected:
                conns = _bleio.adapter.connections
                sensor.connect(conns[0].max_packet_length if conns else hs.DEFAULT_ATT_PAYLOAD)
                if conns:
                    try:  # noqa: SIM105 (CircuitPython has no contextlib)
                        conns[0].connection_interval = CONNECTION_INTERVAL_MS
                    except (_bleio.BluetoothError, ValueError):
                        pass  # the central decides; the request is a wish
            else:
                sensor.disconnect(now)
                advertise()
        if connected:
            conns = _bleio.adapter.connections
            if conns:
                sensor.set_att_payload(conns[0].max_packet_length)
            # -- control point: one write per pass, answered by indication --
            n = cp_writes.readinto(command)
            if n > 0:
                cp_characteristic.value = sensor.command(memoryview(command)[:n], now_us())
        sensor.poll(now)
        # -- sampling on the sensor's grid of sample times --
        if sensor.sample_due(now_us()):
            try:
                if imu is None:
                    raise OSError("no IMU")
                raw = imu.read()
            except OSError:
                sensor.set_imu_fault(True)
            else:
                sensor.set_imu_fault(False)
                sensor.add_sample(raw, now_us())
        # -- sending --
        if connected:
            for _ in range(SENDS_PER_LOOP):
                packet = sensor.next_packet()
                if packet is None:
                    break
                try:
                    service.imu_data = packet
                except (_bleio.BluetoothError, ConnectionError):
                    break  # the link went; the packet stays due for a resume
                sensor.packet_sent()
        if sensor.status_changed:
            sensor.status_changed = False
            service.status = sensor.status()
        # -- slow things --
        if now >= next_battery_us:
            next_battery_us = now + BATTERY_EVERY_US
            pct = battery.percent()
            sensor.set_battery(pct)
            if pct is not None:
                power.level = pct
            if not connected:
                advertise()
        identify = sensor.identifying(now)
        led.value = not (identify and (now // 250_000) % 2 == 0)
        # Sleep to the next sample time when there is nothing else to do.
        next_us = sensor.next_sample_us
        idle_us = 10_000 if next_us is None else next_us - now_us() - 1000
        if idle_us > 1000 and not identify and (not connected or sensor.next_packet() is None):
            time.sleep(min(idle_us, 10_000) / 1_000_000)


main()
