{{/* Labels every object carries. */}}
{{- define "clustermesh.labels" -}}
app.kubernetes.io/part-of: cilium
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* The daemons' image. */}}
{{- define "clustermesh.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/* The clustermesh-apiserver's image: its own when set, else the daemons' one. */}}
{{- define "clustermesh.apiserverImage" -}}
{{ default .Values.image.repository .Values.clustermesh.apiserver.image.repository }}:{{ default .Values.image.tag .Values.clustermesh.apiserver.image.tag }}
{{- end }}

{{/* The container security context of every daemon: unprivileged, read-only root. */}}
{{- define "clustermesh.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop:
    - ALL
{{- end }}

{{/* The flags naming the local cluster, shared by every daemon. */}}
{{- define "clustermesh.clusterArgs" -}}
- --cluster-name={{ .Values.cluster.name }}
- --cluster-id={{ .Values.cluster.id }}
- --max-connected-clusters={{ .Values.clustermesh.maxConnectedClusters }}
{{- end }}

{{/* One remote cluster's etcd config file (dict: endpoint, ca, cert, key). */}}
{{- define "clustermesh.etcdConfig" -}}
endpoints:
  - {{ .endpoint }}
trusted-ca-file: {{ .ca }}
cert-file: {{ .cert }}
key-file: {{ .key }}
{{- end }}
