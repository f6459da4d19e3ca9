"""pushcore: a push-notification backend (device registry and fan-out to APNs, FCM and Web Push)."""

__version__ = "0.1.0"
