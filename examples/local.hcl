# kiln's local example in HCL (the twin of local.yaml): files, commands and a
# message, no AWS needed.
#
#   go run ./cmd/kiln run --once examples/local.hcl
#
# Run it from the top of the checkout: every path is relative and lands in
# local.out/, which git ignores (*.out).
graph = "local"

resource "file" "config" {
  path    = "local.out/app.conf"
  content = <<-EOT
    greeting = hello
    listen = 127.0.0.1:8080
  EOT
  mode    = "0640"
}

# Reads the file through a reference: file.config.path is the config file's
# path output, and makes this exec wait for it.
resource "exec" "render" {
  cmd     = "tr a-z A-Z < ${file.config.path} > local.out/app.conf.upper"
  creates = "local.out/app.conf.upper"
}

# A notify edge: runs only when file.config changed something.
resource "exec" "reload" {
  cmd          = "echo \"app.conf changed; reloading\" && echo reloaded >> local.out/reload.log"
  refresh_only = true
  notified_by  = [file.config]
}

resource "print" "done" {
  msg        = "local: ${file.config.path} is in place"
  depends_on = [exec.render, exec.reload]
}
