using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Sources;
using k8s.Models;

namespace HybridServing.ControlPlane.Resources;

/// <summary>
/// Checks a LoraAdapter the way the API server would with the generated CRD (the same schema
/// attributes), plus the rules a schema cannot express. Every message names the field.
/// </summary>
internal static partial class LoraAdapterValidator
{
    /// <summary>Returns the first problem as "field: message", or null when the object is valid.</summary>
    public static string? Validate(LoraAdapter adapter) => ValidateAll(adapter).FirstOrDefault();

    public static IEnumerable<string> ValidateAll(LoraAdapter adapter)
    {
        var name = adapter.Metadata?.Name;
        if (string.IsNullOrEmpty(name)) yield return "metadata.name: Required value.";
        else if (name.Length > 253 || !DnsSubdomain().IsMatch(name))
            yield return $"metadata.name: Invalid value \"{name}\": must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.').";
        var ns = adapter.Metadata?.NamespaceProperty;
        if (ns is not null && (ns.Length > 63 || !DnsLabel().IsMatch(ns)))
            yield return $"metadata.namespace: Invalid value \"{ns}\": must be a lowercase RFC 1123 label.";

        foreach (var e in Walk(adapter.Spec, typeof(LoraAdapterSpec), "spec")) yield return e;

        // `spec:` with nothing under it reads as null (found by fuzzing: it was a NullReferenceException).
        if (adapter.Spec is not { } spec)
        {
            yield return "spec: Required value: a LoraAdapter needs spec.baseModel and spec.adapterSource.";
            yield break;
        }
        if (spec.AdapterSource?.Pattern is { } pattern && Glob.Check(pattern) is { } globError)
            yield return $"spec.adapterSource.pattern: Invalid value \"{pattern}\": {globError}";
        if (spec.AdapterSource?.Adapters is { } list)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < list.Count; i++)
                if (list[i] is { } n && !seen.Add(n)) yield return $"spec.adapterSource.adapters[{i}]: Duplicate value \"{n}\".";
        }
        if (spec.DeploymentConfig?.Replicas is { } r)
        {
            if (r.Min is { } min && r.Max is { } max && min > max)
                yield return $"spec.deploymentConfig.replicas.min: Invalid value {min}: must not exceed replicas.max ({max}).";
            if (r.All == true && (r.Min is not null || r.Max is not null))
                yield return "spec.deploymentConfig.replicas.all: Invalid value true: cannot be combined with min or max.";
        }
        if (spec.DeploymentConfig?.PodSelector is { } selector)
            foreach (var e in ValidateSelector(selector, "spec.deploymentConfig.podSelector")) yield return e;
        if (spec.SchedulingConfig?.ResourceRequirements?.Memory is { } memory && Quantity.TryParseBytes(memory, out _) is false)
            yield return $"spec.schedulingConfig.resourceRequirements.memory: Invalid value \"{memory}\": must be a quantity such as 512Mi or 2Gi.";
    }

    private static IEnumerable<string> ValidateSelector(V1LabelSelector selector, string path)
    {
        if (selector.MatchLabels is { } labels)
            foreach (var (k, v) in labels)
            {
                if (!LabelKey().IsMatch(k)) yield return $"{path}.matchLabels: Invalid key \"{k}\": not a valid label key.";
                if (v is null || v.Length > 63 || v.Length > 0 && !LabelValue().IsMatch(v)) yield return $"{path}.matchLabels.{k}: Invalid value \"{v}\": not a valid label value.";
            }
        if (selector.MatchExpressions is { } expressions)
            for (var i = 0; i < expressions.Count; i++)
            {
                var e = expressions[i];
                var p = $"{path}.matchExpressions[{i}]";
                if (string.IsNullOrEmpty(e.Key) || !LabelKey().IsMatch(e.Key)) yield return $"{p}.key: Invalid value \"{e.Key}\": not a valid label key.";
                switch (e.OperatorProperty)
                {
                    case "In" or "NotIn":
                        if (e.Values is not { Count: > 0 }) yield return $"{p}.values: Required value: must be non-empty for operator {e.OperatorProperty}.";
                        break;
                    case "Exists" or "DoesNotExist":
                        if (e.Values is { Count: > 0 }) yield return $"{p}.values: Forbidden: must be empty for operator {e.OperatorProperty}.";
                        break;
                    default:
                        yield return $"{p}.operator: Unsupported value \"{e.OperatorProperty}\": supported values: In, NotIn, Exists, DoesNotExist.";
                        break;
                }
            }
    }

    /// <summary>Applies the schema attributes (required, enum, pattern, range, length, items) recursively.</summary>
    private static IEnumerable<string> Walk(object? value, Type type, string path)
    {
        if (value is null || ResourceSchema.IsScalar(type) || type.Namespace?.StartsWith("k8s", StringComparison.Ordinal) == true) yield break;
        foreach (var (jsonName, prop) in ResourceSchema.Properties(type))
        {
            var field = $"{path}.{jsonName}";
            var v = prop.GetValue(value);
            if (prop.GetCustomAttribute<SchemaRequiredAttribute>() is not null && (v is null || v is string { Length: 0 }))
            {
                yield return $"{field}: Required value.";
                continue;
            }
            if (v is null) continue;
            foreach (var e in CheckValue(prop, v, field)) yield return e;
            if (v is IList items && ResourceSchema.ListElement(prop.PropertyType) is { } element)
            {
                if (prop.GetCustomAttribute<SchemaItemsAttribute>() is { } bounds)
                {
                    if (items.Count < bounds.MinItems) yield return $"{field}: Invalid value: must have at least {bounds.MinItems} item(s).";
                    if (bounds.MaxItems > 0 && items.Count > bounds.MaxItems) yield return $"{field}: Too many: {items.Count}: must have at most {bounds.MaxItems} items.";
                }
                for (var i = 0; i < items.Count; i++)
                {
                    if (items[i] is string s) { foreach (var e in CheckValue(prop, s, $"{field}[{i}]")) yield return e; }
                    else foreach (var e in Walk(items[i], element, $"{field}[{i}]")) yield return e;
                }
            }
            else if (!ResourceSchema.IsScalar(prop.PropertyType))
            {
                foreach (var e in Walk(v, prop.PropertyType, field)) yield return e;
            }
        }
    }

    private static IEnumerable<string> CheckValue(PropertyInfo prop, object v, string field)
    {
        if (v is string s)
        {
            if (prop.GetCustomAttribute<SchemaEnumAttribute>() is { } en && !en.Values.Contains(s, StringComparer.Ordinal))
                yield return $"{field}: Unsupported value \"{s}\": supported values: {string.Join(", ", en.Values.Select(x => $"\"{x}\""))}.";
            if (prop.GetCustomAttribute<SchemaLengthAttribute>() is { } len && (s.Length < len.MinLength || s.Length > len.MaxLength))
                yield return $"{field}: Invalid value \"{Truncate(s)}\": length must be between {len.MinLength} and {len.MaxLength}.";
            if (prop.GetCustomAttribute<SchemaPatternAttribute>() is { } pat && !Regex.IsMatch(s, pat.Pattern, RegexOptions.None, TimeSpan.FromSeconds(1)))
                yield return $"{field}: Invalid value \"{Truncate(s)}\": must match {pat.Pattern}.";
        }
        else if (v is int or long && prop.GetCustomAttribute<SchemaRangeAttribute>() is { } range)
        {
            var n = Convert.ToInt64(v, CultureInfo.InvariantCulture);
            if (n < range.Minimum || n > range.Maximum)
                yield return $"{field}: Invalid value {n}: must be between {range.Minimum} and {range.Maximum}.";
        }
    }

    private static string Truncate(string s) => s.Length <= 80 ? s : s[..77] + "...";

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex DnsSubdomain();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex DnsLabel();

    [GeneratedRegex(@"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
    private static partial Regex LabelKey();

    [GeneratedRegex(@"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")]
    private static partial Regex LabelValue();
}

/// <summary>Kubernetes memory quantities (<c>512Mi</c>, <c>2G</c>, <c>1.5Gi</c>) in bytes.</summary>
internal static class Quantity
{
    private static readonly (string Suffix, decimal Factor)[] Suffixes =
    [
        ("Ki", 1L << 10), ("Mi", 1L << 20), ("Gi", 1L << 30), ("Ti", 1L << 40), ("Pi", 1L << 50), ("Ei", 1L << 60),
        ("k", 1e3m), ("M", 1e6m), ("G", 1e9m), ("T", 1e12m), ("P", 1e15m), ("E", 1e18m),
    ];

    public static bool TryParseBytes(string text, out long bytes)
    {
        bytes = 0;
        if (!Regex.IsMatch(text, AdapterNames.QuantityPattern)) return false;
        var factor = 1m;
        var number = text;
        foreach (var (suffix, f) in Suffixes)
            if (text.EndsWith(suffix, StringComparison.Ordinal)) { factor = f; number = text[..^suffix.Length]; break; }
        if (!decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n)) return false;
        if (n > long.MaxValue / factor) return false; // 99999999999999999999999Ei: n × factor overflows even a decimal
        var value = Math.Ceiling(n * factor);
        if (value > long.MaxValue) return false;
        bytes = (long)value;
        return true;
    }
}
