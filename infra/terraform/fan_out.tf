# Fan-out (docs/scaling.md): with fan_out = "map" the state machine runs one ECS task per
# shard of regions in an INLINE Map, then an assemble task that publishes the run. The
# fan-out template holds only the head states; the tail (ReadResult, CheckExecutionStatus, metrics,
# notifications) is state_machine.asl.json's, merged here so both variants share it.

variable "fan_out" {
  description = "\"single\": one task runs every region (default). \"map\": a Map state runs one task per shard of shard_size regions, then an assemble task publishes the run (docs/scaling.md)."
  type        = string
  default     = "single"

  validation {
    condition     = contains(["single", "map"], var.fan_out)
    error_message = "fan_out must be \"single\" or \"map\"."
  }
}

variable "shard_size" {
  description = "Regions per shard task when fan_out = \"map\": the Map runs ceil(regions / shard_size) tasks, at most 40 at once and never more than the Earth Engine quota allows (docs/scaling.md)."
  type        = number
  default     = 25

  validation {
    condition     = var.shard_size >= 1 && var.shard_size <= 1000 && floor(var.shard_size) == var.shard_size
    error_message = "shard_size must be a whole number from 1 to 1000."
  }
}

locals {
  fan_out_head = jsondecode(templatefile("${path.module}/state_machine_fan_out.asl.json", merge(
    local.state_machine_template_variables, { shard_size = tostring(var.shard_size) }
  )))
  single_definition = jsondecode(local.state_machine_definition)
  # RunWeeklyMonitoring gives way to RunShards and Assemble; ValidateInputs is replaced by the
  # fan-out one (it also returns the plan); every other state is the single variant's.
  fan_out_definition = jsonencode(merge(local.single_definition, {
    Comment = local.fan_out_head.Comment
    States = merge(
      { for name, state in local.single_definition.States : name => state if name != "RunWeeklyMonitoring" },
      # The skip calendar is the single variant's; an ordinary week goes on to the Map.
      { CheckSkipCalendar = merge(local.single_definition.States.CheckSkipCalendar, { Default = "RunShards" }) },
      local.fan_out_head.States,
    )
  }))
  deployed_state_machine_definition = var.fan_out == "map" ? local.fan_out_definition : local.state_machine_definition
}
