using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HybridServing.Contracts.Resources;
using k8s;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace HybridServing.ControlPlane.Resources;

/// <summary>One YAML document of a manifest file: a LoraAdapter, or why it is not one.</summary>
/// <param name="Adapter">Set when the document named an object (even if its spec is invalid).</param>
/// <param name="Error">Why the document is unusable or its spec invalid (names the field).</param>
internal sealed record ManifestDocument(int Index, LoraAdapter? Adapter, string? Error);

/// <summary>A manifest file: its documents, or one error for the whole file (YAML syntax).</summary>
internal sealed record ManifestFile(string Path, IReadOnlyList<ManifestDocument> Documents, string? Error);

/// <summary>
/// Reads LoraAdapter YAML. YAML is turned into JSON first (scalars typed the YAML 1.2 core way) and
/// then read with the Kubernetes JSON options, so that type errors carry the JSON path of the field
/// and unknown fields are refused (kubectl's strict validation) rather than silently dropped.
/// </summary>
internal static partial class ManifestReader
{
    private const int MaxDepth = 64;
    private const int MaxNodes = 200_000;

    public static ManifestFile Read(string path, string text)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            return new ManifestFile(path, [], $"{System.IO.Path.GetFileName(path)}: YAML syntax error at line {e.Start.Line}, column {e.Start.Column}: {Inner(e).Message}");
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner and loader throw these (not YamlException) for some malformed input (found by fuzzing).
            return new ManifestFile(path, [], $"{System.IO.Path.GetFileName(path)}: YAML syntax error: the file is not well-formed YAML ({e.Message}).");
        }

        var documents = new List<ManifestDocument>();
        for (var i = 0; i < stream.Documents.Count; i++)
        {
            var root = stream.Documents[i].RootNode;
            if (root is YamlScalarNode { Value: null or "" } or null) continue; // empty document (e.g. a trailing '---')
            documents.Add(ReadDocument(i, root));
        }
        return new ManifestFile(path, documents, null);
    }

    private static Exception Inner(Exception e) => e.InnerException is YamlException inner ? Inner(inner) : e;

    private static ManifestDocument ReadDocument(int index, YamlNode root)
    {
        JsonNode? json;
        try
        {
            var budget = MaxNodes;
            json = ToJson(root, 0, ref budget, "");
        }
        catch (FormatException e)
        {
            return new ManifestDocument(index, null, $"document {index + 1}: {e.Message}");
        }
        if (json is not JsonObject obj)
            return new ManifestDocument(index, null, $"document {index + 1}: expected a mapping (an object with apiVersion, kind, metadata, spec), found {root.NodeType}.");

        var kind = (obj["kind"] as JsonValue)?.ToString();
        var apiVersion = (obj["apiVersion"] as JsonValue)?.ToString();
        var name = ((obj["metadata"] as JsonObject)?["name"] as JsonValue)?.ToString();
        var ns = ((obj["metadata"] as JsonObject)?["namespace"] as JsonValue)?.ToString();
        var label = name is null ? $"document {index + 1}" : $"LoraAdapter {name}";

        if (kind != LoraAdapter.KindName)
            return new ManifestDocument(index, null, $"document {index + 1}: kind '{kind ?? "(missing)"}' is not supported here; expected kind: {LoraAdapter.KindName}.");
        if (apiVersion != LoraAdapter.ApiVersionValue)
            return new ManifestDocument(index, null, $"{label}: apiVersion '{apiVersion ?? "(missing)"}' is not supported; use apiVersion: {LoraAdapter.ApiVersionValue}.");
        if (string.IsNullOrWhiteSpace(name))
            return new ManifestDocument(index, null, $"document {index + 1}: metadata.name is required.");

        // A document we can name but not read still becomes an object, so its status can say InvalidSpec.
        var shell = new LoraAdapter { Metadata = new() { Name = name, NamespaceProperty = ns } };
        var unknown = UnknownFields(obj, typeof(LoraAdapter), "");
        if (unknown is not null)
            return new ManifestDocument(index, shell, $"{unknown}: unknown field.");

        try
        {
            var adapter = KubernetesJson.Deserialize<LoraAdapter>(obj.ToJsonString());
            return new ManifestDocument(index, adapter, null);
        }
        catch (JsonException e)
        {
            var field = JsonPathToField(e.Path);
            return new ManifestDocument(index, shell, $"{(field.Length == 0 ? "document" : field)}: has the wrong type ({FirstSentence(e.Message)})");
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or ArgumentException or NotSupportedException)
        {
            return new ManifestDocument(index, shell, $"document: {e.Message}");
        }
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(". Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }

    /// <summary><c>$.spec.adapterSource['type']</c> or <c>$.spec.adapters[0]</c> → <c>spec.adapterSource.type</c>.</summary>
    internal static string JsonPathToField(string? path)
    {
        if (string.IsNullOrEmpty(path)) return "";
        var s = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
        return BracketName().Replace(s, m => "." + m.Groups[1].Value).TrimStart('.');
    }

    [GeneratedRegex(@"\['([^']*)'\]")]
    private static partial Regex BracketName();

    /// <summary>The first field in <paramref name="node"/> that <paramref name="type"/> does not declare, as a dotted path.</summary>
    internal static string? UnknownFields(JsonNode? node, Type type, string path)
    {
        if (node is null || ResourceSchema.IsScalar(type)) return null;
        var t = Nullable.GetUnderlyingType(type) ?? type;
        if (ResourceSchema.DictionaryValue(t) is { } valueType)
        {
            if (node is not JsonObject map) return null;
            foreach (var (k, v) in map)
                if (UnknownFields(v, valueType, $"{path}.{k}") is { } u) return u;
            return null;
        }
        if (ResourceSchema.ListElement(t) is { } element)
        {
            if (node is not JsonArray array) return null;
            for (var i = 0; i < array.Count; i++)
                if (UnknownFields(array[i], element, $"{path}[{i}]") is { } u) return u;
            return null;
        }
        if (node is not JsonObject obj || ResourceSchema.IsFreeForm(t)) return null;
        var props = ResourceSchema.Properties(t).ToDictionary(p => p.JsonName, p => p.Property.PropertyType, StringComparer.Ordinal);
        foreach (var (k, v) in obj)
        {
            var field = path.Length == 0 ? k : $"{path}.{k}";
            if (!props.TryGetValue(k, out var propType)) return field;
            if (UnknownFields(v, propType, field) is { } u) return u;
        }
        return null;
    }

    private static JsonNode? ToJson(YamlNode node, int depth, ref int budget, string path)
    {
        if (depth > MaxDepth) throw new FormatException($"nesting deeper than {MaxDepth} levels at {path}.");
        if (--budget < 0) throw new FormatException($"more than {MaxNodes} YAML nodes (aliases expanded); refusing to read.");
        switch (node)
        {
            case YamlMappingNode map:
                var obj = new JsonObject();
                foreach (var (k, v) in map.Children)
                {
                    if (k is not YamlScalarNode { Value: { } key })
                        throw new FormatException($"a mapping key at line {k.Start.Line} is not a plain string.");
                    var child = path.Length == 0 ? key : $"{path}.{key}";
                    if (obj.ContainsKey(key)) throw new FormatException($"{child}: duplicate key at line {k.Start.Line}.");
                    obj[key] = ToJson(v, depth + 1, ref budget, child);
                }
                return obj;
            case YamlSequenceNode seq:
                var array = new JsonArray();
                var i = 0;
                foreach (var item in seq.Children) array.Add(ToJson(item, depth + 1, ref budget, $"{path}[{i++}]"));
                return array;
            case YamlScalarNode scalar:
                return Scalar(scalar);
            default:
                throw new FormatException($"{path}: unsupported YAML node at line {node.Start.Line}.");
        }
    }

    // YAML 1.2 core schema for plain scalars; quoted scalars are always strings.
    private static JsonNode? Scalar(YamlScalarNode scalar)
    {
        var v = scalar.Value ?? "";
        if (scalar.Style is not (ScalarStyle.Plain or ScalarStyle.Any)) return JsonValue.Create(v);
        if (v is "" or "~" or "null" or "Null" or "NULL") return null;
        if (v is "true" or "True" or "TRUE") return JsonValue.Create(true);
        if (v is "false" or "False" or "FALSE") return JsonValue.Create(false);
        if (IntegerPattern().IsMatch(v) && long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonValue.Create(l);
        if (FloatPattern().IsMatch(v) && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return JsonValue.Create(d);
        return JsonValue.Create(v);
    }

    [GeneratedRegex(@"^[-+]?[0-9]+$")]
    private static partial Regex IntegerPattern();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
    private static partial Regex FloatPattern();
}
