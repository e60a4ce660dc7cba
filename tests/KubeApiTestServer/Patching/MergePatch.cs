using System.Text.Json.Nodes;

namespace HybridServing.KubeApiTestServer.Patching;

/// <summary>
/// RFC 7386 JSON merge patch: objects merge recursively, <c>null</c> removes a member, anything
/// else (arrays included) replaces.
/// </summary>
internal static class MergePatch
{
    public static JsonNode? Apply(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject patchObject)
        {
            return patch?.DeepClone();
        }

        var result = target is JsonObject targetObject ? (JsonObject)targetObject.DeepClone() : new JsonObject();
        foreach (var (name, value) in patchObject)
        {
            if (value is null)
            {
                result.Remove(name);
                continue;
            }

            var merged = Apply(result[name], value);
            result[name] = merged;
        }

        return result;
    }
}
