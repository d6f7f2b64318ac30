# A template that runs anywhere Terraform does, offline: it uses only Terraform's built-in
# `terraform_data` resource, whose `local-exec` provisioners run on the provisioner's machine.
# Those commands see the workspace's facts in their environment (CODER_WORKSPACE_NAME,
# CODER_WORKSPACE_OWNER, CODER_WORKSPACE_TRANSITION, ...): the variables the coder provider reads.

terraform {
  required_version = ">= 1.4"
}

variable "greeting" {
  type        = string
  description = "What the workspace says when it is created."
  default     = "Hello from coderd-rs"
}

variable "delay_seconds" {
  type        = number
  description = "How long creating the workspace takes, to watch a build run."
  default     = 0
}

resource "terraform_data" "workspace" {
  input = {
    greeting = var.greeting
    delay    = var.delay_seconds
  }

  # Creation-time provisioners run once, when the workspace is first built.
  provisioner "local-exec" {
    command = "sleep $DELAY; echo \"$GREETING: workspace $CODER_WORKSPACE_NAME of $CODER_WORKSPACE_OWNER was created\""
    environment = {
      GREETING = self.input.greeting
      DELAY    = self.input.delay
    }
  }

  # Destroy-time provisioners run when the workspace is deleted.
  provisioner "local-exec" {
    when    = destroy
    command = "echo \"Goodbye from workspace $CODER_WORKSPACE_NAME\""
  }
}

output "greeting" {
  value = terraform_data.workspace.output.greeting
}
