variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "ccapi-monitor"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,23}$", var.name_prefix))
    error_message = "name_prefix: 2-24 characters, lower-case letters, digits and '-', starting with a letter."
  }
}

variable "environment" {
  description = "Environment name: the metrics' Environment dimension, the report label and part of resource names."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.environment))
    error_message = "environment: 1-16 characters, lower-case letters, digits and '-', starting with a letter (it is embedded in ASL format strings and names)."
  }
}

variable "ecs_cluster_arn" {
  description = "ARN of the existing ECS cluster the Fargate tasks run in."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]{1,255}$", var.ecs_cluster_arn))
    error_message = "ecs_cluster_arn must be an ECS cluster ARN (arn:aws:ecs:REGION:ACCOUNT:cluster/NAME)."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the tasks (outbound internet through NAT; the task gets no public IP)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "subnet_ids: one or more subnet IDs (subnet-xxxxxxxx)."
  }
}

variable "security_group_ids" {
  description = "Security groups for the tasks (egress to HTTPS is all the worker needs)."
  type        = list(string)

  validation {
    condition     = length(var.security_group_ids) > 0 && length(var.security_group_ids) <= 5 && alltrue([for s in var.security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "security_group_ids: one to five security group IDs (sg-xxxxxxxx)."
  }
}

variable "container_image" {
  description = "Worker image, ideally pinned by digest (ECR: ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:...)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64}|:[A-Za-z0-9._-]{1,128})?$", var.container_image))
    error_message = "container_image must be an image reference (registry/repository:tag or @sha256:digest)."
  }
}

variable "container_name" {
  description = "Name of the worker container in the task definition (the state machine overrides its command)."
  type        = string
  default     = "worker"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.container_name))
    error_message = "container_name: letters, digits, '-' and '_'."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 2048

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.task_cpu)
    error_message = "task_cpu must be a Fargate CPU value: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "task_memory" {
  description = "Fargate task memory (MiB); must be a valid combination with task_cpu."
  type        = number
  default     = 8192

  validation {
    # Fargate CPU/memory combinations (AWS ECS developer guide, "Task CPU and memory").
    condition = (
      var.task_cpu == 256 ? contains([512, 1024, 2048], var.task_memory) :
      var.task_cpu == 512 ? var.task_memory >= 1024 && var.task_memory <= 4096 && var.task_memory % 1024 == 0 :
      var.task_cpu == 1024 ? var.task_memory >= 2048 && var.task_memory <= 8192 && var.task_memory % 1024 == 0 :
      var.task_cpu == 2048 ? var.task_memory >= 4096 && var.task_memory <= 16384 && var.task_memory % 1024 == 0 :
      var.task_cpu == 4096 ? var.task_memory >= 8192 && var.task_memory <= 30720 && var.task_memory % 1024 == 0 :
      var.task_cpu == 8192 ? var.task_memory >= 16384 && var.task_memory <= 61440 && var.task_memory % 4096 == 0 :
      var.task_cpu == 16384 ? var.task_memory >= 32768 && var.task_memory <= 122880 && var.task_memory % 8192 == 0 :
      false
    )
    error_message = "task_memory is not a valid Fargate combination with task_cpu (e.g. 256: 512-2048; 1024: 2048-8192 in 1024 steps; 2048: 4096-16384; 4096: 8192-30720)."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the worker image."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "ephemeral_storage_gib" {
  description = "Fargate ephemeral storage (GiB) backing the writable /tmp volume."
  type        = number
  default     = 50

  validation {
    condition     = var.ephemeral_storage_gib >= 21 && var.ephemeral_storage_gib <= 200 && floor(var.ephemeral_storage_gib) == var.ephemeral_storage_gib
    error_message = "ephemeral_storage_gib must be a whole number from 21 to 200."
  }
}

variable "reports_uri" {
  description = "Where reports are published: s3://bucket/prefix (CCAPI_REPORTS_URI)."
  type        = string

  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*'()/-]*)?$", var.reports_uri))
    error_message = "reports_uri must be s3://bucket or s3://bucket/prefix."
  }
}

variable "cache_uri" {
  description = "Checkpoint cache: s3://bucket/prefix (CCAPI_CACHE_URI)."
  type        = string

  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*'()/-]*)?$", var.cache_uri))
    error_message = "cache_uri must be s3://bucket or s3://bucket/prefix."
  }
}

variable "gee_secret_arn" {
  description = "Secrets Manager secret holding the Earth Engine service-account key JSON (injected as GEE_SERVICE_ACCOUNT_KEY)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.gee_secret_arn))
    error_message = "gee_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "gee_project" {
  description = "Earth Engine cloud project (GEE_PROJECT); empty to leave it to the key."
  type        = string
  default     = ""
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key ARN for SNS topics, log groups, the DLQ, the schedule and report objects. Its key policy must allow the services listed in README.md."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias): arn:aws:kms:REGION:ACCOUNT:key/ID."
  }
}

variable "secret_kms_key_arn" {
  description = "KMS key encrypting the GEE secret when it is not the AWS-managed key; null otherwise."
  type        = string
  default     = null

  validation {
    condition     = var.secret_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.secret_kms_key_arn))
    error_message = "secret_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "success_emails" {
  description = "Email addresses subscribed to success notifications (each must confirm)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.success_emails : can(regex("^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}$", e))])
    error_message = "success_emails: every entry must be an email address."
  }
}

variable "failure_emails" {
  description = "Email addresses subscribed to failure, partial-failure and alarm notifications."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.failure_emails : can(regex("^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}$", e))])
    error_message = "failure_emails: every entry must be an email address."
  }
}

variable "schedule_expression" {
  description = "EventBridge Scheduler cron expression (six fields, day-of-month or day-of-week '?')."
  type        = string
  default     = "cron(0 6 ? * MON *)"

  validation {
    condition = (
      can(regex("^cron\\([0-9A-Za-z*?,/#-]+( [0-9A-Za-z*?,/#-]+){5}\\)$", var.schedule_expression)) &&
      try(
        contains(["?"], split(" ", trimsuffix(trimprefix(var.schedule_expression, "cron("), ")"))[2]) !=
        contains(["?"], split(" ", trimsuffix(trimprefix(var.schedule_expression, "cron("), ")"))[4]),
        false
      )
    )
    error_message = "schedule_expression must be cron(min hour day-of-month month day-of-week year) with exactly one of day-of-month and day-of-week set to '?', e.g. cron(0 6 ? * MON *)."
  }
}

variable "schedule_timezone" {
  description = "IANA time zone the cron expression is evaluated in."
  type        = string
  default     = "UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.schedule_timezone))
    error_message = "schedule_timezone must be an IANA time zone name such as UTC or Asia/Jakarta."
  }
}

variable "schedule_enabled" {
  description = "Whether the weekly schedule is enabled."
  type        = bool
  default     = true
}

variable "imagery" {
  description = "Imagery backend the scheduled run uses (CCAPI_IMAGERY)."
  type        = string
  default     = "earthengine"

  validation {
    condition     = contains(["earthengine", "stac", "demo"], var.imagery)
    error_message = "imagery must be earthengine, stac or demo."
  }
}

variable "infrastructure" {
  description = "OpenStreetMap infrastructure source (CCAPI_INFRASTRUCTURE)."
  type        = string
  default     = "overpass"

  validation {
    condition     = contains(["overpass", "pbf", "off"], var.infrastructure)
    error_message = "infrastructure must be overpass, pbf or off."
  }
}

variable "max_concurrency" {
  description = "Regions processed concurrently (CCAPI_MAX_CONCURRENCY)."
  type        = number
  default     = 4

  validation {
    condition     = var.max_concurrency >= 1 && var.max_concurrency <= 64 && floor(var.max_concurrency) == var.max_concurrency
    error_message = "max_concurrency must be a whole number from 1 to 64."
  }
}

variable "metric_namespace" {
  description = "CloudWatch namespace of the worker's and the state machine's metrics."
  type        = string
  default     = "CloudClearingAPI"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metric_namespace)) && !startswith(var.metric_namespace, "AWS/")
    error_message = "metric_namespace: 1-255 of letters, digits and . _ / # : - and not starting with AWS/."
  }
}

variable "log_retention_days" {
  description = "Retention of the worker and state machine log groups."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, ...)."
  }
}

variable "missing_success_alarm_days" {
  description = "Notify when no run completed (WeeklyRunCompleted: succeeded, partial or skipped) for this many daily periods. CloudWatch caps Period x EvaluationPeriods at 7 days."
  type        = number
  default     = 7

  validation {
    condition     = var.missing_success_alarm_days >= 1 && var.missing_success_alarm_days <= 7 && floor(var.missing_success_alarm_days) == var.missing_success_alarm_days
    error_message = "missing_success_alarm_days must be a whole number from 1 to 7 (CloudWatch evaluates at most 7 days: Period x EvaluationPeriods <= 604800 s)."
  }
}

variable "enable_xray_sidecar" {
  description = "Run the AWS X-Ray daemon next to the worker and turn on worker tracing (CCAPI_XRAY)."
  type        = bool
  default     = false
}

variable "xray_daemon_image" {
  description = "X-Ray daemon image used when enable_xray_sidecar is true."
  type        = string
  default     = "public.ecr.aws/xray/aws-xray-daemon:3.3.14"
}

variable "tags" {
  description = "Tags applied to every resource (provider default_tags are honoured as well)."
  type        = map(string)
  default     = {}
}

# --- The seed's knobs, passed to every scheduled run's execution input --------------------------

variable "default_regions_count" {
  description = "Regions the scheduled run processes (first N by priority then name; execution input regions_count). null: all regions in the regions file."
  type        = number
  default     = null

  validation {
    condition     = var.default_regions_count == null || try(var.default_regions_count >= 1 && floor(var.default_regions_count) == var.default_regions_count, false)
    error_message = "default_regions_count must be null (all regions) or a whole number of at least 1."
  }
}

variable "enable_web_scraping" {
  description = "Turn on the market-price web scraping of the scheduled run (execution input enable_scraping)."
  type        = bool
  default     = false
}

# --- Skip calendar (holidays and maintenance windows) --------------------------------------------

variable "skip_calendar" {
  description = <<-EOT
    Weeks the scheduled run skips. ValidateInputs (ccapi-monitor preflight) skips a run whose run date is a
    public holiday of public_holidays_country (the `holidays` library; "" turns this off), one of dates
    (date => reason) or inside one of windows (inclusive start/end dates with a reason). A skipped run ends
    as a success with a "skipped" notification and starts no RunWeeklyMonitoring task; execution input
    {"force": true} runs anyway.
  EOT
  type = object({
    public_holidays_country = optional(string, "ID")
    dates                   = optional(map(string), {})
    windows = optional(list(object({
      start  = string
      end    = string
      reason = string
    })), [])
  })
  default = {}

  validation {
    condition     = can(regex("^([A-Z]{2})?$", var.skip_calendar.public_holidays_country))
    error_message = "skip_calendar.public_holidays_country must be an ISO 3166-1 alpha-2 code such as ID, or \"\" for none."
  }

  validation {
    condition = alltrue(concat(
      [for d, reason in var.skip_calendar.dates : can(formatdate("YYYY-MM-DD", "${d}T00:00:00Z")) && trimspace(reason) != ""],
      [for w in var.skip_calendar.windows : try(timecmp("${w.start}T00:00:00Z", "${w["end"]}T00:00:00Z") <= 0, false) && trimspace(w.reason) != ""],
    ))
    error_message = "skip_calendar: dates are YYYY-MM-DD => non-empty reason; windows have YYYY-MM-DD start <= end and a non-empty reason."
  }
}

# --- Slack ---------------------------------------------------------------------------------------

variable "slack_webhook_secret_arn" {
  description = "Secrets Manager secret whose value is a Slack incoming-webhook URL. Set it to post run results and alarms to Slack (a Lambda subscribed to the topics); null: no Slack resources."
  type        = string
  default     = null

  validation {
    condition     = var.slack_webhook_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.slack_webhook_secret_arn))
    error_message = "slack_webhook_secret_arn must be null or a Secrets Manager secret ARN."
  }
}

variable "slack_secret_kms_key_arn" {
  description = "KMS key encrypting the Slack secret when it is not the AWS-managed key; null otherwise."
  type        = string
  default     = null

  validation {
    condition     = var.slack_secret_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.slack_secret_kms_key_arn))
    error_message = "slack_secret_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "slack_notify_success" {
  description = "Post successful and skipped runs to Slack too (failures, partial runs and alarms always go)."
  type        = bool
  default     = true
}

variable "slack_notifier_zip" {
  description = "Path of the Slack notifier package built by `make slack-notifier`; null: build/slack_notifier.zip in this module."
  type        = string
  default     = null
}
