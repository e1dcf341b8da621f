import { posix } from 'node:path';
import type { ConfigMap, Container, Pod } from '../registry/objects.js';

/**
 * ConfigMap volumes: the files a container sees under its mounts. Local mode has no
 * filesystem per container, so a mount is a map from absolute path to content, read from
 * the ConfigMap as it is now (the kubelet also updates mounted ConfigMaps in place).
 */

interface KeyToPath {
  readonly key: string;
  readonly path: string;
}

interface ConfigMapVolume {
  readonly name: string;
  readonly configMap: string;
  readonly items?: readonly KeyToPath[] | undefined;
  readonly optional: boolean;
}

interface VolumeMount {
  readonly name: string;
  readonly mountPath: string;
  readonly subPath?: string | undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function configMapVolumes(pod: Pod): ConfigMapVolume[] {
  const volumes = pod.spec.volumes;
  if (!Array.isArray(volumes)) return [];
  return volumes.flatMap((v: unknown): ConfigMapVolume[] => {
    if (!isRecord(v) || typeof v.name !== 'string' || !isRecord(v.configMap)) return [];
    const cm = v.configMap;
    if (typeof cm.name !== 'string') return [];
    const items = Array.isArray(cm.items)
      ? cm.items.flatMap((i: unknown): KeyToPath[] =>
          isRecord(i) && typeof i.key === 'string' && typeof i.path === 'string'
            ? [{ key: i.key, path: i.path }]
            : [],
        )
      : undefined;
    return [{ name: v.name, configMap: cm.name, items, optional: cm.optional === true }];
  });
}

function mountsOf(c: Container): VolumeMount[] {
  const mounts = c.volumeMounts;
  if (!Array.isArray(mounts)) return [];
  return mounts.flatMap((m: unknown): VolumeMount[] =>
    isRecord(m) && typeof m.name === 'string' && typeof m.mountPath === 'string'
      ? [
          {
            name: m.name,
            mountPath: m.mountPath,
            subPath: typeof m.subPath === 'string' ? m.subPath : undefined,
          },
        ]
      : [],
  );
}

/** The ConfigMaps (by name, in the pod's namespace) a pod's volumes name. */
export function configMapsOf(pod: Pod): string[] {
  return [...new Set(configMapVolumes(pod).map((v) => v.configMap))];
}

/**
 * Why the pod's ConfigMap volumes cannot be mounted (the kubelet's FailedMount message),
 * or undefined when every required one exists.
 */
export function missingConfigMap(
  pod: Pod,
  get: (name: string) => ConfigMap | undefined,
): string | undefined {
  for (const v of configMapVolumes(pod)) {
    if (!v.optional && get(v.configMap) === undefined) {
      return `MountVolume.SetUp failed for volume ${JSON.stringify(v.name)} : configmap ${JSON.stringify(v.configMap)} not found`;
    }
  }
  return undefined;
}

/** The files under `container`'s mounts, read from the ConfigMaps now. */
export function containerFiles(
  pod: Pod,
  container: Container,
  get: (name: string) => ConfigMap | undefined,
): Map<string, string> {
  const files = new Map<string, string>();
  const volumes = new Map(configMapVolumes(pod).map((v) => [v.name, v]));
  for (const m of mountsOf(container)) {
    const v = volumes.get(m.name);
    if (v === undefined) continue;
    const cm = get(v.configMap);
    const data: Record<string, string> = { ...(cm?.data ?? {}) };
    for (const [k, b64] of Object.entries(cm?.binaryData ?? {})) {
      data[k] = Buffer.from(b64, 'base64').toString('utf8');
    }
    const entries =
      v.items === undefined
        ? Object.entries(data).map(([k, text]) => [k, text] as const)
        : v.items.flatMap((i) => {
            const text = data[i.key];
            return text === undefined ? [] : [[i.path, text] as const];
          });
    for (const [rel, text] of entries) {
      if (m.subPath !== undefined) {
        // A subPath mount puts one file (or entry) at the mount path itself.
        if (rel === m.subPath) files.set(posix.normalize(m.mountPath), text);
        continue;
      }
      files.set(posix.join(m.mountPath, rel), text);
    }
  }
  return files;
}
