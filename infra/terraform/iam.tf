# Least privilege: every statement names its resources. Where AWS supports no resource-level
# permissions for an action, the statement says so and narrows it with a condition where one exists.

locals {
  same_account = { StringEquals = { "aws:SourceAccount" = local.account_id } }
  # One trust policy per AWS service that assumes a role here, limited to this account where the
  # service passes aws:SourceAccount (Lambda does not for its execution role, so no condition there).
  trust_policy = {
    for service in ["states", "ecs-tasks", "scheduler", "lambda"] : service => jsonencode({
      Version = "2012-10-17"
      Statement = [merge(
        {
          Effect    = "Allow"
          Principal = { Service = "${service}.amazonaws.com" }
          Action    = ["sts:AssumeRole"]
        },
        service == "lambda" ? {} : { Condition = local.same_account },
      )]
    })
  }
  ecs_task_arn_pattern = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${element(split("/", var.ecs_cluster_arn), 1)}/*"

  xray_statement = {
    Sid      = "XRayNoResourceLevelPermissions" # X-Ray write actions support no resource-level scoping
    Effect   = "Allow"
    Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    Resource = ["*"]
  }
  # A role that writes one log group and reads one secret (ECS task execution: the GEE key; the
  # Slack notifier: the webhook), with kms:Decrypt via Secrets Manager when the secret has its own key.
  secret_readers = merge(
    { GeeKey = { log_group_arn = aws_cloudwatch_log_group.worker.arn, secret_arn = var.gee_secret_arn, kms_key_arn = var.secret_kms_key_arn } },
    local.slack_enabled ? { SlackWebhook = { log_group_arn = aws_cloudwatch_log_group.slack[0].arn, secret_arn = var.slack_webhook_secret_arn, kms_key_arn = var.slack_secret_kms_key_arn } } : {},
  )
  log_and_secret_statements = {
    for name, r in local.secret_readers : name => concat(
      [
        {
          Sid      = "WriteLogs"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
          Resource = ["${r.log_group_arn}:*"]
        },
        {
          Sid      = "Read${name}"
          Effect   = "Allow"
          Action   = ["secretsmanager:GetSecretValue"]
          Resource = [r.secret_arn]
        },
      ],
      r.kms_key_arn == null ? [] : [{
        Sid       = "Decrypt${name}"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [r.kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${local.region}.amazonaws.com" } }
      }],
    )
  }

  put_metric_statement = {
    Sid       = "PutMetricDataOwnNamespace" # PutMetricData has no resource type; the namespace condition scopes it
    Effect    = "Allow"
    Action    = ["cloudwatch:PutMetricData"]
    Resource  = ["*"]
    Condition = { StringEquals = { "cloudwatch:namespace" = var.metric_namespace } }
  }
}

# --- Step Functions -----------------------------------------------------------------------

resource "aws_iam_role" "state_machine" {
  name               = "${local.name}-sfn"
  assume_role_policy = local.trust_policy["states"]
  tags               = local.tags
}

resource "aws_iam_role_policy" "state_machine" {
  #checkov:skip=CKV_AWS_290:Log delivery, X-Ray and PutMetricData support no resource-level permissions; each such statement is commented and PutMetricData is limited by a namespace condition.
  #checkov:skip=CKV_AWS_355:Same statements: AWS accepts only "*" for these actions (see the Sid of each statement).
  name = "${local.name}-sfn"
  role = aws_iam_role.state_machine.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "RunWorkerTask"
        Effect    = "Allow"
        Action    = ["ecs:RunTask"]
        Resource  = [aws_ecs_task_definition.worker.arn]
        Condition = { ArnEquals = { "ecs:cluster" = var.ecs_cluster_arn } }
      },
      {
        Sid       = "TagTasksOnRun" # PropagateTags: ECS authorises tag-on-create with ecs:TagResource
        Effect    = "Allow"
        Action    = ["ecs:TagResource"]
        Resource  = [local.ecs_task_arn_pattern]
        Condition = { StringEquals = { "ecs:CreateAction" = "RunTask" } }
      },
      {
        Sid      = "PassOnlyTheTaskRoles"
        Effect   = "Allow"
        Action   = ["iam:PassRole"]
        Resource = [aws_iam_role.task.arn, aws_iam_role.task_execution.arn]
        Condition = {
          StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" }
        }
      },
      {
        Sid      = "EcsManagedRule" # the managed rule Step Functions uses for ECS task events (documented ECS integration policy)
        Effect   = "Allow"
        Action   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
        Resource = ["arn:${local.partition}:events:${local.region}:${local.account_id}:rule/StepFunctionsGetEventsForECSTaskRule"]
      },
      {
        Sid      = "Notify"
        Effect   = "Allow"
        Action   = ["sns:Publish"]
        Resource = [aws_sns_topic.success.arn, aws_sns_topic.failure.arn]
      },
      {
        Sid       = "EncryptedTopics"
        Effect    = "Allow"
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = "sns.${local.region}.amazonaws.com" } }
      },
      local.put_metric_statement,
      {
        Sid    = "LogDeliveryNoResourceLevelPermissions" # CloudWatch Logs vended delivery APIs accept only "*"
        Effect = "Allow"
        Action = [
          "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
          "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
        ]
        Resource = ["*"]
      },
      local.xray_statement,
    ]
  })
}

# --- ECS task execution role (the agent: pull image, write logs, read the secret) -----------

resource "aws_iam_role" "task_execution" {
  name               = "${local.name}-task-execution"
  assume_role_policy = local.trust_policy["ecs-tasks"]
  tags               = local.tags
}

resource "aws_iam_role_policy" "task_execution" {
  #checkov:skip=CKV_AWS_355:ecr:GetAuthorizationToken supports no resource-level permissions (its statement is commented); it is only present for ECR images.
  #checkov:skip=CKV_AWS_290:Same ecr:GetAuthorizationToken statement; everything else is scoped to ARNs.
  name = "${local.name}-task-execution"
  role = aws_iam_role.task_execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.log_and_secret_statements["GeeKey"], local.ecr_repository_arn == null ? [] : [
      {
        Sid      = "EcrAuthNoResourceLevelPermissions" # GetAuthorizationToken accepts only "*"
        Effect   = "Allow"
        Action   = ["ecr:GetAuthorizationToken"]
        Resource = ["*"]
      },
      {
        Sid      = "PullWorkerImage"
        Effect   = "Allow"
        Action   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
        Resource = [local.ecr_repository_arn]
      },
      ],
    )
  })
}

# --- ECS task role (the worker itself) ------------------------------------------------------

resource "aws_iam_role" "task" {
  name               = "${local.name}-task"
  assume_role_policy = local.trust_policy["ecs-tasks"]
  tags               = local.tags
}

resource "aws_iam_role_policy" "task" {
  #checkov:skip=CKV_AWS_290:states:SendTask*, PutMetricData and X-Ray support no resource-level permissions (each statement is commented); PutMetricData is limited by namespace.
  #checkov:skip=CKV_AWS_355:Same statements: AWS accepts only "*" for these actions.
  name = "${local.name}-task"
  role = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "ReadWriteReportsAndCache"
          Effect   = "Allow"
          Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
          Resource = local.object_arns
        },
        {
          Sid       = "ListReportsAndCache"
          Effect    = "Allow"
          Action    = ["s3:ListBucket"]
          Resource  = local.bucket_arns
          Condition = { StringLike = { "s3:prefix" = local.list_prefixes } }
        },
        {
          Sid       = "EncryptReportObjects"
          Effect    = "Allow"
          Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
          Resource  = [var.kms_key_arn]
          Condition = { StringEquals = { "kms:ViaService" = "s3.${local.region}.amazonaws.com" } }
        },
        {
          Sid      = "CallbackNoResourceLevelPermissions" # SendTask* identify the execution by its token; AWS supports no resource scoping
          Effect   = "Allow"
          Action   = ["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"]
          Resource = ["*"]
        },
        local.put_metric_statement,
      ],
      var.enable_xray_sidecar ? [local.xray_statement] : [],
    )
  })
}

# --- EventBridge Scheduler --------------------------------------------------------------------

resource "aws_iam_role" "scheduler" {
  name               = "${local.name}-scheduler"
  assume_role_policy = local.trust_policy["scheduler"]
  tags               = local.tags
}

resource "aws_iam_role_policy" "scheduler" {
  name = "${local.name}-scheduler"
  role = aws_iam_role.scheduler.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "StartWeeklyExecution"
        Effect   = "Allow"
        Action   = ["states:StartExecution"]
        Resource = [aws_sfn_state_machine.weekly.arn]
      },
      {
        Sid      = "DeadLetter"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.schedule_dlq.arn]
      },
      {
        # The schedule's target input is encrypted with the customer-managed key; Scheduler decrypts
        # it with this role when it invokes the target (EventBridge Scheduler, "Encryption at rest").
        Sid      = "DecryptScheduleInput"
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [var.kms_key_arn]
      },
      {
        Sid       = "EncryptedDeadLetterQueue"
        Effect    = "Allow"
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = "sqs.${local.region}.amazonaws.com" } }
      },
    ]
  })
}
