locals {
  worker_environment = concat(
    [
      { name = "CCAPI_ENVIRONMENT", value = var.environment },
      { name = "CCAPI_REPORTS_URI", value = var.reports_uri },
      { name = "CCAPI_CACHE_URI", value = var.cache_uri },
      { name = "CCAPI_IMAGERY", value = var.imagery },
      { name = "CCAPI_INFRASTRUCTURE", value = var.infrastructure },
      { name = "CCAPI_MAX_CONCURRENCY", value = tostring(var.max_concurrency) },
      { name = "CCAPI_KMS_KEY_ID", value = var.kms_key_arn },
      { name = "CCAPI_METRICS", value = "cloudwatch" },
      # The namespace the task role's PutMetricData condition allows: the worker must use the same.
      { name = "CCAPI_METRIC_NAMESPACE", value = var.metric_namespace },
      # Read by ValidateInputs (ccapi-monitor preflight) to decide whether this week is skipped.
      { name = "CCAPI_SKIP_CALENDAR", value = jsonencode(local.skip_calendar) },
      { name = "CCAPI_XRAY", value = var.enable_xray_sidecar ? "true" : "false" },
      { name = "TMPDIR", value = "/tmp" },
      { name = "HOME", value = "/tmp" },
    ],
    var.gee_project == "" ? [] : [{ name = "GEE_PROJECT", value = var.gee_project }],
    var.enable_xray_sidecar ? [{ name = "AWS_XRAY_DAEMON_ADDRESS", value = "127.0.0.1:2000" }] : [],
  )

  worker_base = {
    name                   = var.container_name
    image                  = var.container_image
    essential              = true
    readonlyRootFilesystem = true
    stopTimeout            = 120 # time to checkpoint and call back SendTaskFailure(CCAPI.Aborted) on SIGTERM
    environment            = local.worker_environment
    secrets                = [{ name = "GEE_SERVICE_ACCOUNT_KEY", valueFrom = var.gee_secret_arn }]
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "worker"
      }
    }
  }

  # dependsOn only with the sidecar: an empty list would show up as a diff on every plan.
  worker_container = merge(local.worker_base, {
    for k, v in { dependsOn = [{ containerName = "xray-daemon", condition = "START" }] } : k => v if var.enable_xray_sidecar
  })

  xray_container = {
    name                   = "xray-daemon"
    image                  = var.xray_daemon_image
    essential              = false
    readonlyRootFilesystem = true
    cpu                    = 32
    memoryReservation      = 64
    portMappings           = [{ containerPort = 2000, protocol = "udp" }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "xray"
      }
    }
  }
}

resource "aws_ecs_task_definition" "worker" {
  family                   = local.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.task_cpu)
  memory                   = tostring(var.task_memory)
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.task.arn

  container_definitions = jsonencode(concat(
    [local.worker_container],
    var.enable_xray_sidecar ? [local.xray_container] : [],
  ))

  # Writable scratch space on the task's ephemeral storage; the root filesystem stays read-only.
  volume {
    name = "tmp"
  }

  ephemeral_storage {
    size_in_gib = var.ephemeral_storage_gib
  }

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  tags = local.tags

  lifecycle {
    # A cluster in another region than the provider's is a wrong aws_region / AWS_REGION: fail at plan.
    precondition {
      condition     = regex("^arn:[^:]+:ecs:([a-z0-9-]+):", var.ecs_cluster_arn)[0] == coalesce(var.aws_region, local.region)
      error_message = "ecs_cluster_arn is in another region than the one Terraform deploys to: set aws_region (or AWS_REGION) to the cluster's region."
    }
  }
}
