# Slack: a small Lambda subscribed to the topics renders each notification as Block Kit and posts
# it to an incoming webhook whose URL it reads from Secrets Manager at run time (never a variable,
# never in the state machine definition or Terraform state). Alarms on the failure topic reach
# Slack the same way. Why not the alternatives: docs/decisions.md, "Slack notifications".
# Nothing here exists unless slack_webhook_secret_arn is set.

locals {
  slack_enabled = var.slack_webhook_secret_arn != null
  slack_zip     = coalesce(var.slack_notifier_zip, "${path.module}/build/slack_notifier.zip")
  slack_topics = local.slack_enabled ? merge(
    { failure = aws_sns_topic.failure.arn },
    var.slack_notify_success ? { success = aws_sns_topic.success.arn } : {},
  ) : {}
}

resource "aws_sqs_queue" "slack_dlq" {
  count                     = local.slack_enabled ? 1 : 0
  name                      = "${local.name}-slack-dlq"
  kms_master_key_id         = var.kms_key_arn
  message_retention_seconds = 1209600 # 14 days: longer than the weekly cadence
  tags                      = local.tags
}

resource "aws_cloudwatch_log_group" "slack" {
  count             = local.slack_enabled ? 1 : 0
  name              = "/aws/lambda/${local.name}-slack"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

resource "aws_iam_role" "slack" {
  count              = local.slack_enabled ? 1 : 0
  name               = "${local.name}-slack"
  assume_role_policy = local.trust_policy["lambda"]
  tags               = local.tags
}

resource "aws_iam_role_policy" "slack" {
  #checkov:skip=CKV_AWS_290:Only the X-Ray statement uses "*" (X-Ray write actions support no resource-level permissions); everything else names its ARN.
  #checkov:skip=CKV_AWS_355:Same X-Ray statement: AWS accepts only "*" for PutTraceSegments and PutTelemetryRecords.
  count = local.slack_enabled ? 1 : 0
  name  = "${local.name}-slack"
  role  = aws_iam_role.slack[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.log_and_secret_statements["SlackWebhook"], [
      {
        Sid      = "DeadLetter"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.slack_dlq[0].arn]
      },
      {
        Sid       = "EncryptedDeadLetterQueue"
        Effect    = "Allow"
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = "sqs.${local.region}.amazonaws.com" } }
      },
      {
        Sid      = "XRayNoResourceLevelPermissions" # X-Ray write actions support no resource-level scoping
        Effect   = "Allow"
        Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
        Resource = ["*"]
      },
    ])
  })
}

resource "aws_lambda_function" "slack" {
  #checkov:skip=CKV_AWS_117:The notifier talks only to Secrets Manager and Slack's public webhook; a VPC would need a NAT for the same egress and adds nothing.
  #checkov:skip=CKV_AWS_272:The package is built from this repository by `make slack-notifier` and deployed by this module; there is no signing profile to verify against.
  count                          = local.slack_enabled ? 1 : 0
  function_name                  = "${local.name}-slack"
  description                    = "Posts ccapi-monitor run results and alarms (${var.environment}) to Slack."
  role                           = aws_iam_role.slack[0].arn
  runtime                        = "python3.12"
  handler                        = "slack_notifier.handler"
  filename                       = local.slack_zip
  source_code_hash               = fileexists(local.slack_zip) ? filebase64sha256(local.slack_zip) : null
  timeout                        = 30
  memory_size                    = 128
  reserved_concurrent_executions = 2
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = {
      SLACK_WEBHOOK_SECRET_ARN = var.slack_webhook_secret_arn
      CCAPI_ENVIRONMENT        = var.environment
      CCAPI_DASHBOARD_URL      = local.dashboard_url
    }
  }

  tracing_config {
    mode = "Active"
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.slack_dlq[0].arn
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.slack[0].name
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = fileexists(local.slack_zip)
      error_message = "The Slack notifier package is missing: run `make slack-notifier` in the repository root (or set slack_notifier_zip)."
    }
  }

  depends_on = [aws_iam_role_policy.slack]
}

resource "aws_lambda_permission" "slack" {
  for_each      = local.slack_topics
  statement_id  = "sns-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.slack[0].function_name
  principal     = "sns.amazonaws.com"
  source_arn    = each.value
}

resource "aws_sns_topic_subscription" "slack" {
  for_each  = local.slack_topics
  topic_arn = each.value
  protocol  = "lambda"
  endpoint  = aws_lambda_function.slack[0].arn

  depends_on = [aws_lambda_permission.slack]
}
