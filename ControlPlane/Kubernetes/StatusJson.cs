using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HybridServing.Contracts.Resources;
using k8s;

namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>
/// Status as the API server keeps it, so that "did it change?" compares like with like: times in
/// whole seconds (metav1.Time), no nulls, and a condition's lastTransitionTime carried over from the
/// stored one while its status is unchanged (a restarted control plane must not rewrite every
/// object just because its in-memory transition times are new). Pure.
/// </summary>
internal static partial class StatusJson
{
    [GeneratedRegex(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")]
    private static partial Regex Timestamp();

    public static JsonObject Normalize(LoraAdapterStatus status, JsonElement? stored)
    {
        var node = (JsonObject)JsonNode.Parse(KubernetesJson.Serialize(status))!;
        var clean = (JsonObject)Clean(node)!;
        if (stored is { ValueKind: JsonValueKind.Object } old
            && old.TryGetProperty("conditions", out var oldConditions) && oldConditions.ValueKind == JsonValueKind.Array
            && clean["conditions"] is JsonArray conditions)
        {
            foreach (var c in conditions.OfType<JsonObject>())
            {
                var type = c["type"]?.GetValue<string>();
                var value = c["status"]?.GetValue<string>();
                foreach (var o in oldConditions.EnumerateArray())
                {
                    if (o.ValueKind != JsonValueKind.Object) continue;
                    if (o.TryGetProperty("type", out var t) && t.GetString() == type
                        && o.TryGetProperty("status", out var s) && s.GetString() == value
                        && o.TryGetProperty("lastTransitionTime", out var ltt) && ltt.ValueKind == JsonValueKind.String)
                        c["lastTransitionTime"] = ltt.GetString();
                }
            }
        }
        return clean;
    }

    /// <summary>True when the stored status already says what <paramref name="desired"/> says.</summary>
    public static bool Same(JsonObject desired, JsonElement? stored)
    {
        if (stored is not { ValueKind: JsonValueKind.Object } s) return false;
        var storedNode = Clean(JsonNode.Parse(s.GetRawText()));
        return JsonNode.DeepEquals(desired, storedNode);
    }

    private static JsonNode? Clean(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                var result = new JsonObject();
                foreach (var (k, v) in o)
                {
                    if (v is null) continue;
                    result[k] = Clean(v);
                }
                return result;
            case JsonArray a:
                return new JsonArray([.. a.Select(Clean)]);
            case JsonValue v when v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() is var text && Timestamp().IsMatch(text):
                var t = DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal).ToUniversalTime();
                return JsonValue.Create(t.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
            default:
                return node?.DeepClone();
        }
    }
}
