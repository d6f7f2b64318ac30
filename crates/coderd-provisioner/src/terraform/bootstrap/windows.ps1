# Starts a workspace's Coder agent: fetches the agent binary this deployment serves and runs it.
# ${ACCESS_URL}, ${AUTH_TYPE} and ${ARCH} are filled in before the script reaches the machine.
$ErrorActionPreference = "Stop"
$ProgressPreference = "SilentlyContinue"

$dir = Join-Path $env:TEMP "coder-agent"
New-Item -ItemType Directory -Force -Path $dir | Out-Null
$binary = Join-Path $dir "coder.exe"
$url = "${ACCESS_URL}bin/coder-windows-${ARCH}.exe"

while ($true) {
  try {
    Invoke-WebRequest -Uri $url -OutFile $binary -UseBasicParsing
    break
  } catch {
    Write-Output "error: downloading the Coder agent from $url failed; retrying in 30s"
    Start-Sleep -Seconds 30
  }
}

$env:CODER_AGENT_AUTH = "${AUTH_TYPE}"
$env:CODER_AGENT_URL = "${ACCESS_URL}"
Start-Process -FilePath $binary -ArgumentList "agent" -NoNewWindow -Wait
