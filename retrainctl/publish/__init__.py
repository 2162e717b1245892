"""What others see: MLflow runs and the registry alias, Prometheus metrics (pushed or written),
the report page, and notifications (the callback, a command, signed webhooks, chat)."""
