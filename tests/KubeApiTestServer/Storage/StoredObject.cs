using System.Globalization;
using System.Text.Json.Nodes;
using HybridServing.KubeApiTestServer.Resources;
using HybridServing.KubeApiTestServer.Selectors;

namespace HybridServing.KubeApiTestServer.Storage;

/// <summary>
/// One immutable version of an object. The JSON text is rendered once when the version is stored,
/// so responses and watch events never race with later writes.
/// </summary>
internal sealed class StoredObject
{
    private readonly JsonObject _node;

    public StoredObject(ApiResource resource, JsonObject node)
    {
        Resource = resource;
        _node = node;
        Json = node.ToJsonString();
        var metadata = node["metadata"] as JsonObject ?? [];
        Name = Text(metadata["name"]) ?? "";
        Namespace = Text(metadata["namespace"]) ?? "";
        Uid = Text(metadata["uid"]) ?? "";
        ResourceVersion = long.Parse(Text(metadata["resourceVersion"]) ?? "0", CultureInfo.InvariantCulture);
        IsTerminating = metadata["deletionTimestamp"] is not null;
        GracePeriodSeconds = Number(metadata["deletionGracePeriodSeconds"]) ?? 0;
        TerminationGracePeriodSeconds = Number(node["spec"]?["terminationGracePeriodSeconds"]);
        NodeName = Text(node["spec"]?["nodeName"]) ?? "";
        Finalizers = (metadata["finalizers"] as JsonArray)?.Select(Text).OfType<string>().ToArray() ?? [];
        OwnerUids = (metadata["ownerReferences"] as JsonArray)?.Select(o => Text(o?["uid"])).OfType<string>().ToArray() ?? [];
        Labels = (metadata["labels"] as JsonObject)?.Where(p => Text(p.Value) is not null)
            .ToDictionary(p => p.Key, p => Text(p.Value)!, StringComparer.Ordinal) ?? new Dictionary<string, string>(StringComparer.Ordinal);
        Fields = FieldSelector.SelectableFields(resource).ToDictionary(f => f, f => FieldValue(node, f), StringComparer.Ordinal);
    }

    public ApiResource Resource { get; }
    public string Json { get; }
    public string Name { get; }
    public string Namespace { get; }
    public string Uid { get; }
    public long ResourceVersion { get; }
    public bool IsTerminating { get; }

    /// <summary><c>metadata.deletionGracePeriodSeconds</c>; 0 when absent.</summary>
    public long GracePeriodSeconds { get; }

    /// <summary>A pod's <c>spec.terminationGracePeriodSeconds</c>, when set.</summary>
    public long? TerminationGracePeriodSeconds { get; }

    /// <summary>A pod's <c>spec.nodeName</c>; empty when unscheduled or not a pod.</summary>
    public string NodeName { get; }
    public IReadOnlyList<string> Finalizers { get; }
    public IReadOnlyList<string> OwnerUids { get; }
    public IReadOnlyDictionary<string, string> Labels { get; }
    public IReadOnlyDictionary<string, string> Fields { get; }

    public string Key => StoreKey(Namespace, Name);

    /// <summary>A private, mutable copy to build the next version from.</summary>
    public JsonObject CloneNode() => (JsonObject)_node.DeepClone();

    public static string StoreKey(string ns, string name) => ns + "/" + name;

    public static long? Number(JsonNode? node) =>
        node is JsonValue value && long.TryParse(value.ToJsonString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) ? parsed : null;

    public static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static string FieldValue(JsonObject node, string path)
    {
        JsonNode? current = node;
        foreach (var part in path.Split('.'))
        {
            current = (current as JsonObject)?[part];
        }

        return current switch
        {
            null => "",
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonValue v when v.TryGetValue<bool>(out var b) => b ? "true" : "false",
            _ => current.ToJsonString(),
        };
    }
}
