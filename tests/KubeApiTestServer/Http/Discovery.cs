using System.Text.Json.Nodes;
using HybridServing.KubeApiTestServer.Resources;

namespace HybridServing.KubeApiTestServer.Http;

/// <summary>
/// The discovery documents (<c>/version</c>, <c>/api</c>, <c>/apis</c>, <c>/api/v1</c>,
/// <c>/apis/{group}/{version}</c>) built from the registered resources, and the health paths.
/// </summary>
internal static class Discovery
{
    public static string? Answer(string path, ResourceCatalog catalog)
    {
        var segments = path.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        var resources = catalog.All;
        JsonNode? answer = segments switch
        {
            ["version"] => new JsonObject
            {
                ["major"] = "1",
                ["minor"] = "32",
                ["gitVersion"] = OpenApi.Version + "-hybridserving-test",
                ["goVersion"] = "go1.23.0",
                ["compiler"] = "gc",
                ["platform"] = "linux/amd64",
            },
            ["healthz"] or ["readyz"] or ["livez"] => null,
            ["api"] => new JsonObject
            {
                ["kind"] = "APIVersions",
                ["versions"] = new JsonArray(resources.Where(r => r.Group.Length == 0).Select(r => r.Version).Distinct().Select(v => (JsonNode)v).ToArray()),
            },
            ["apis"] => new JsonObject
            {
                ["kind"] = "APIGroupList",
                ["apiVersion"] = "v1",
                ["groups"] = new JsonArray(resources.Where(r => r.Group.Length > 0).GroupBy(r => r.Group).OrderBy(g => g.Key, StringComparer.Ordinal)
                    .Select(g => (JsonNode)Group(g.Key, g.Select(r => r.Version).Distinct().ToArray())).ToArray()),
            },
            ["api", var version] when catalog.IsKnownGroupVersion("", version) => ResourceList("", version, resources),
            ["apis", var group, var version] when catalog.IsKnownGroupVersion(group, version) => ResourceList(group, version, resources),
            _ => throw ApiError.UnknownResource(),
        };
        return answer?.ToJsonString() ?? "\"ok\"";
    }

    private static JsonObject Group(string name, IReadOnlyList<string> versions)
    {
        JsonObject Version(string v) => new() { ["groupVersion"] = name + "/" + v, ["version"] = v };
        return new JsonObject
        {
            ["name"] = name,
            ["versions"] = new JsonArray(versions.Select(v => (JsonNode)Version(v)).ToArray()),
            ["preferredVersion"] = Version(versions[0]),
        };
    }

    private static JsonObject ResourceList(string group, string version, IEnumerable<ApiResource> resources)
    {
        var entries = new List<JsonNode>();
        foreach (var r in resources.Where(r => r.Group == group && r.Version == version).OrderBy(r => r.Plural, StringComparer.Ordinal))
        {
            var entry = new JsonObject
            {
                ["name"] = r.Plural,
                ["singularName"] = r.Kind.ToLowerInvariant(),
                ["namespaced"] = r.Namespaced,
                ["kind"] = r.Kind,
                ["verbs"] = new JsonArray("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
            };
            if (r.ShortNames.Count > 0)
            {
                entry["shortNames"] = new JsonArray(r.ShortNames.Select(n => (JsonNode)n).ToArray());
            }

            if (r.Categories.Count > 0)
            {
                entry["categories"] = new JsonArray(r.Categories.Select(n => (JsonNode)n).ToArray());
            }

            entries.Add(entry);
            if (r.HasScaleSubresource)
            {
                entries.Add(new JsonObject
                {
                    ["name"] = r.Plural + "/scale",
                    ["singularName"] = "",
                    ["namespaced"] = r.Namespaced,
                    ["group"] = "autoscaling",
                    ["version"] = "v1",
                    ["kind"] = "Scale",
                    ["verbs"] = new JsonArray("get", "patch", "update"),
                });
            }

            if (r.HasStatusSubresource)
            {
                entries.Add(new JsonObject
                {
                    ["name"] = r.Plural + "/status",
                    ["singularName"] = "",
                    ["namespaced"] = r.Namespaced,
                    ["kind"] = r.Kind,
                    ["verbs"] = new JsonArray("get", "patch", "update"),
                });
            }
        }

        return new JsonObject
        {
            ["kind"] = "APIResourceList",
            ["apiVersion"] = "v1",
            ["groupVersion"] = group.Length == 0 ? version : group + "/" + version,
            ["resources"] = new JsonArray(entries.ToArray()),
        };
    }
}
