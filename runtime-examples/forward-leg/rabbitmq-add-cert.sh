#!/bin/sh
# One sectoral CERT on the hub's RabbitMQ node: its virtual host, its user, the hub's
# rights there, the exchange the hub publishes to and the CERT's queue bound to it.
#
#   rabbitmq-add-cert.sh KEY HUB_PASSWORD_FILE CERT_PASSWORD_FILE
#
# KEY is the CERT's constituency key in the hub's registry (ibd, surf, ...). The
# passwords are read from files (never from the command line, which other users of the
# host can see). Run it as the node's operator; again after a change: it is idempotent (a
# user that exists gets the password of its file).
#
# Environment (defaults in brackets):
#   RABBITMQCTL  the rabbitmqctl command [rabbitmqctl]
#   VHOST        the CERT's virtual host [nsm-KEY]
#   HUB_USER     the hub's user, one for all CERTs [nsm-hub]
#   CERT_USER    the CERT's user [KEY]
#   EXCHANGE     where the hub publishes [nsm-forward]
#   QUEUE        what the CERT reads [nsm-forward-KEY]
#
# Rights (rabbitmqctl set_permissions -p VHOST USER CONFIGURE WRITE READ):
#   hub:  configure and write on the exchange alone (IntelMQ's AMQP output declares the
#         exchange it publishes to, which takes configure), read nothing;
#   CERT: read its queue alone, configure and write nothing;
#   anyone else (another CERT's user): no rights on this virtual host, so no connection.
set -eu

if [ $# -ne 3 ]; then
    echo "usage: $0 KEY HUB_PASSWORD_FILE CERT_PASSWORD_FILE" >&2
    exit 2
fi
key=$1
hub_password_file=$2
cert_password_file=$3
case "$key" in
    *[!a-z0-9_-]* | "") echo "$0: KEY must be lower-case letters, digits, - or _: $key" >&2; exit 2 ;;
esac
ctl=${RABBITMQCTL:-rabbitmqctl}
vhost=${VHOST:-nsm-$key}
hub_user=${HUB_USER:-nsm-hub}
cert_user=${CERT_USER:-$key}
exchange=${EXCHANGE:-nsm-forward}
queue=${QUEUE:-nsm-forward-$key}

# A user that exists gets the password of its file; a new one is made with it.
user() {
    if $ctl -q list_users | cut -f1 | grep -qx -- "$1"; then
        $ctl -q change_password "$1" < "$2"
    else
        $ctl -q add_user "$1" < "$2"
    fi
}

$ctl -q add_vhost "$vhost"
user "$hub_user" "$hub_password_file"
user "$cert_user" "$cert_password_file"
# Regular expressions, anchored: the names as they are, dots and all.
exchange_re="^$(printf %s "$exchange" | sed 's/[.]/\\./g')\$"
queue_re="^$(printf %s "$queue" | sed 's/[.]/\\./g')\$"
$ctl -q set_permissions -p "$vhost" "$hub_user" "$exchange_re" "$exchange_re" '^$'
$ctl -q set_permissions -p "$vhost" "$cert_user" '^$' '^$' "$queue_re"

# The exchange, the queue and their binding, as definitions the node imports. The queue
# is durable (messages survive a restart of the node) and of classic queue version 2,
# which confirms a persistent message about twice as fast as version 1 (RabbitMQ 3.10+).
definitions=$(mktemp)
trap 'rm -f "$definitions"' EXIT
cat > "$definitions" <<JSON
{
  "exchanges": [
    {"name": "$exchange", "vhost": "$vhost", "type": "topic", "durable": true,
     "auto_delete": false, "internal": false, "arguments": {}}
  ],
  "queues": [
    {"name": "$queue", "vhost": "$vhost", "durable": true, "auto_delete": false,
     "arguments": {"x-queue-version": 2}}
  ],
  "bindings": [
    {"source": "$exchange", "vhost": "$vhost", "destination": "$queue",
     "destination_type": "queue", "routing_key": "#", "arguments": {}}
  ]
}
JSON
chmod 644 "$definitions"
$ctl -q import_definitions "$definitions"
echo "$key: virtual host $vhost, exchange $exchange (hub user $hub_user writes), queue $queue (CERT user $cert_user reads)."
