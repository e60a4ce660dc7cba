using System.Globalization;
using System.Text.Json.Nodes;

namespace HybridServing.KubeApiTestServer.Resources;

/// <summary>Reads a CustomResourceDefinition into the resources it serves, and gives it the status the apiextensions controller would.</summary>
public static class CustomResourceDefinitionReader
{
    /// <summary>The resources (one per served version) that <paramref name="crd"/> declares.</summary>
    /// <exception cref="ArgumentException">A required field is missing, named in the message.</exception>
    public static IReadOnlyList<ApiResource> Describe(JsonObject crd)
    {
        ArgumentNullException.ThrowIfNull(crd);
        var spec = crd["spec"] as JsonObject ?? throw new ArgumentException("the CustomResourceDefinition has no spec");
        var names = spec["names"] as JsonObject ?? throw new ArgumentException("the CustomResourceDefinition has no spec.names");
        var group = Required(spec, "group", "spec.group");
        var plural = Required(names, "plural", "spec.names.plural");
        var kind = Required(names, "kind", "spec.names.kind");
        var namespaced = Text(spec["scope"]) != "Cluster";
        var versions = (spec["versions"] as JsonArray ?? []).OfType<JsonObject>().Where(v => v["served"] is not JsonValue served || served.GetValue<bool>()).ToArray();
        if (versions.Length == 0)
        {
            throw new ArgumentException("the CustomResourceDefinition serves no version (spec.versions[].served)");
        }

        return versions.Select(v => new ApiResource(group, Required(v, "name", "spec.versions[].name"), plural, kind, namespaced, v["subresources"]?["status"] is not null)
        {
            IsCustom = true,
            ReturnsDeletedObject = true,
            HasScaleSubresource = v["subresources"]?["scale"] is not null,
            ShortNames = Strings(names["shortNames"]),
            Categories = Strings(names["categories"]),
            PrinterColumns = (v["additionalPrinterColumns"] as JsonArray ?? []).OfType<JsonObject>()
                .Select(c => new PrinterColumn(Required(c, "name", "additionalPrinterColumns[].name"), Text(c["type"]) ?? "string", Required(c, "jsonPath", "additionalPrinterColumns[].jsonPath"),
                    (int)(c["priority"] is JsonValue p ? p.GetValue<long>() : 0))
                {
                    Description = Text(c["description"]) ?? "",
                    Format = Text(c["format"]) ?? "",
                })
                .ToArray(),
        }).ToArray();
    }

    /// <summary>The status an established CRD has: NamesAccepted and Established true, acceptedNames, storedVersions.</summary>
    internal static JsonObject Established(JsonObject crd, DateTimeOffset now)
    {
        var timestamp = now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        JsonObject Condition(string type, string reason, string message) => new()
        {
            ["type"] = type,
            ["status"] = "True",
            ["lastTransitionTime"] = timestamp,
            ["reason"] = reason,
            ["message"] = message,
        };

        var stored = (crd["spec"]?["versions"] as JsonArray ?? []).OfType<JsonObject>()
            .Where(v => v["storage"] is JsonValue s && s.GetValue<bool>())
            .Select(v => (JsonNode?)Text(v["name"]))
            .ToArray();
        return new JsonObject
        {
            ["conditions"] = new JsonArray(
                Condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                Condition("Established", "InitialNamesAccepted", "the initial names have been accepted")),
            ["acceptedNames"] = crd["spec"]?["names"]?.DeepClone(),
            ["storedVersions"] = new JsonArray(stored),
        };
    }

    private static string Required(JsonObject node, string field, string path) =>
        Text(node[field]) is { Length: > 0 } value ? value : throw new ArgumentException($"the CustomResourceDefinition has no {path}");

    private static IReadOnlyList<string> Strings(JsonNode? node) => (node as JsonArray ?? []).Select(Text).OfType<string>().ToArray();

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}
