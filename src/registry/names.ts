import { parseIdentityId } from '../keyspace/index.js';

/**
 * Kubernetes name rules (apimachinery `validation`), so that objects accepted here would
 * also be accepted by a real API server when the Kubernetes adapter arrives.
 */

const DNS1123_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z](?:[-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;

export const DNS1123_LABEL_MAX = 63;
export const DNS1123_SUBDOMAIN_MAX = 253;

export function isDns1123Label(s: string): boolean {
  return s.length <= DNS1123_LABEL_MAX && DNS1123_LABEL.test(s);
}

export function isDns1123Subdomain(s: string): boolean {
  return (
    s.length <= DNS1123_SUBDOMAIN_MAX && s.split('.').every((part) => DNS1123_LABEL.test(part))
  );
}

export function isDns1035Label(s: string): boolean {
  return s.length <= DNS1123_LABEL_MAX && DNS1035_LABEL.test(s);
}

export const DNS1123_LABEL_RULE =
  "must be a lowercase RFC 1123 label (at most 63 characters: a-z, 0-9 and '-', starting and ending with an alphanumeric)";
export const DNS1123_SUBDOMAIN_RULE =
  "must be a lowercase RFC 1123 subdomain (at most 253 characters: a-z, 0-9, '-' and '.', each part starting and ending with an alphanumeric)";
export const DNS1035_LABEL_RULE =
  "must be a lowercase RFC 1035 label (at most 63 characters: a-z, 0-9 and '-', starting with a letter and ending with an alphanumeric)";

/** Problem with a label or annotation key (`[prefix/]name`), or `null` when valid. */
export function qualifiedNameProblem(key: string): string | null {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix === '' || !isDns1123Subdomain(prefix))) {
    return `key ${JSON.stringify(key)}: the prefix ${DNS1123_SUBDOMAIN_RULE}`;
  }
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    return (
      `key ${JSON.stringify(key)}: the name part must be at most 63 characters of ` +
      "alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric"
    );
  }
  return null;
}

/** Problem with a label value, or `null` when valid (empty is valid). */
export function labelValueProblem(value: string): string | null {
  if (value === '') return null;
  if (value.length > 63 || !QUALIFIED_NAME.test(value)) {
    return (
      `value ${JSON.stringify(value)}: must be at most 63 characters of alphanumerics, ` +
      "'-', '_' and '.', starting and ending with an alphanumeric"
    );
  }
  return null;
}

/** A named port (`targetPort: http`): IANA service name, at most 15 characters, one letter at least. */
export function isIanaServiceName(s: string): boolean {
  return s.length <= 15 && IANA_SVC_NAME.test(s) && /[a-z]/.test(s) && !s.includes('--');
}

/** A rule a name must follow, with the message saying what it wants. */
export interface NameRule {
  readonly test: (s: string) => boolean;
  readonly rule: string;
}

/** The rules objects' names follow; each kind names its rule in src/registry/kinds.ts. */
export const NameRules = {
  dns1123Subdomain: { test: isDns1123Subdomain, rule: DNS1123_SUBDOMAIN_RULE },
  dns1123Label: { test: isDns1123Label, rule: DNS1123_LABEL_RULE },
  dns1035Label: { test: isDns1035Label, rule: DNS1035_LABEL_RULE },
  /** CiliumIdentity: the name is the identity itself. */
  numericIdentity: {
    test: (s: string) => (parseIdentityId(s) ?? 0) > 0,
    rule: 'must be the decimal numeric identity (1-4294967295, no leading zeros)',
  },
} as const satisfies Readonly<Record<string, NameRule>>;
