# A template that runs anywhere Terraform does, offline: it uses only Terraform's built-in
# `terraform_data` resource, whose `local-exec` provisioner runs on the provisioner's machine.

terraform {
  required_version = ">= 1.4"
}

variable "greeting" {
  type        = string
  description = "What the workspace says when it starts."
  default     = "Hello from coderd-rs"
}

variable "workspace_name" {
  type        = string
  description = "Set by the provisioner from the workspace being built."
  default     = "example"
}

resource "terraform_data" "workspace" {
  input = var.workspace_name

  provisioner "local-exec" {
    command = "echo '${var.greeting}: ${self.input}'"
  }
}

output "workspace" {
  value = terraform_data.workspace.output
}
