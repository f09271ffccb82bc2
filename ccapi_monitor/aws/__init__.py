"""AWS runtime: S3 store, CloudWatch metrics, Step Functions callback, X-Ray tracing."""
