"""What each runtime can do on this machine, checked truthfully and quickly."""

from sandbox.doctor.report import DoctorReport, run_doctor

__all__ = ["DoctorReport", "run_doctor"]
