#!/bin/sh
# Nightly logical backup of the compose PostgreSQL: at BACKUP_HOUR (UTC) a pg_dump in custom
# format to /backups (./backups on the host), kept BACKUP_KEEP_DAYS days. Restore:
# docs/operations.md ("Backup and restore"). Copy ./backups off the machine too.
set -eu
while true; do
  now=$(date -u +%s)
  next=$(date -u -d "$(date -u +%Y-%m-%d) ${BACKUP_HOUR}:00:00" +%s 2>/dev/null || echo 0)
  if [ "$next" -le "$now" ]; then
    next=$((next + 86400))
  fi
  sleep $((next - now))
  file="/backups/aiapi-$(date -u +%Y%m%dT%H%M%SZ).dump"
  if pg_dump --format=custom --file="$file.partial"; then
    mv "$file.partial" "$file"
    echo "backup written: $file"
  else
    rm -f "$file.partial"
    echo "backup FAILED" >&2
  fi
  find /backups -name 'aiapi-*.dump' -mtime +"$BACKUP_KEEP_DAYS" -delete
done
