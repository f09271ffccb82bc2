resource "aws_sqs_queue" "schedule_dlq" {
  name                      = "${local.name}-schedule-dlq"
  kms_master_key_id         = var.kms_key_arn
  message_retention_seconds = 1209600 # 14 days: longer than the weekly cadence
  tags                      = local.tags
}

resource "aws_scheduler_schedule" "weekly" {
  name                         = local.name
  description                  = "Weekly ccapi-monitor run (${var.environment})"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_timezone
  state                        = var.schedule_enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_sfn_state_machine.weekly.arn
    role_arn = aws_iam_role.scheduler.arn

    # The scheduled (not the actual) time, so a late or retried start reports on the intended date.
    # regions_count only when set: absent means every region in the regions file.
    input = jsonencode(merge(
      {
        run_date        = "<aws.scheduler.scheduled-time>"
        trigger         = "schedule"
        enable_scraping = var.enable_web_scraping
      },
      var.default_regions_count == null ? {} : { regions_count = var.default_regions_count },
    ))

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 5
    }

    dead_letter_config {
      arn = aws_sqs_queue.schedule_dlq.arn
    }
  }
}
