using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using HybridServing.KubeApiTestServer.Resources;

namespace HybridServing.KubeApiTestServer.Http;

/// <summary>
/// A minimal OpenAPI v3: <c>/openapi/v3</c> lists one document per group-version, and each document
/// has the resource paths with their operations, the <c>x-kubernetes-group-version-kind</c> of each and
/// the <c>dryRun</c> and <c>fieldValidation</c> query parameters. That is what kubectl reads to decide
/// that the server validates fields itself (<c>fieldValidation=Strict</c>) and supports
/// <c>--dry-run=server</c>. The PATCH operations do not offer strategic merge patch, so kubectl computes
/// one from its compiled-in types for built-in kinds (and a merge patch for custom resources) instead
/// of from schemas this server does not have. No schemas: <c>kubectl explain</c> is out of scope.
/// </summary>
internal static class OpenApi
{
    public const string Version = "v1.32.0";

    /// <summary>The answer for an <c>/openapi/...</c> path; null when the path is not an OpenAPI path.</summary>
    public static string? Answer(string path, ResourceCatalog catalog)
    {
        var segments = path.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        var groupVersions = catalog.All.GroupBy(r => r.Group.Length == 0 ? "api/" + r.Version : "apis/" + r.Group + "/" + r.Version)
            .ToDictionary(g => g.Key, g => g.OrderBy(r => r.Plural, StringComparer.Ordinal).ToArray(), StringComparer.Ordinal);
        switch (segments)
        {
            case ["openapi", "v3"]:
            {
                var paths = new JsonObject();
                foreach (var (key, resources) in groupVersions.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    paths[key] = new JsonObject { ["serverRelativeURL"] = $"/openapi/v3/{key}?hash={Hash(Document(resources).ToJsonString())}" };
                }

                return new JsonObject { ["paths"] = paths }.ToJsonString();
            }

            case ["openapi", "v3", .. var rest] when groupVersions.TryGetValue(string.Join('/', rest), out var resources):
                return Document(resources).ToJsonString();

            case ["openapi", ..]:
                // There is no OpenAPI v2 here; kubectl uses v3 when the server has it.
                throw new ApiError(404, "NotFound", $"the Kubernetes API test server serves OpenAPI v3 only (/openapi/v3), not {path}");

            default:
                return null;
        }
    }

    private static JsonObject Document(IEnumerable<ApiResource> resources)
    {
        var paths = new JsonObject();
        foreach (var r in resources)
        {
            var prefix = (r.Group.Length == 0 ? "/api/" + r.Version : "/apis/" + r.Group + "/" + r.Version) + (r.Namespaced ? "/namespaces/{namespace}" : "");
            paths[$"{prefix}/{r.Plural}"] = new JsonObject
            {
                ["get"] = Operation(r, "list", []),
                ["post"] = Operation(r, "post", ["application/json"]),
                ["delete"] = Operation(r, "deletecollection", ["application/json"]),
            };
            paths[$"{prefix}/{r.Plural}/{{name}}"] = ObjectPath(r);
            if (r.HasStatusSubresource)
            {
                paths[$"{prefix}/{r.Plural}/{{name}}/status"] = ObjectPath(r, withDelete: false);
            }

            if (r.HasScaleSubresource)
            {
                paths[$"{prefix}/{r.Plural}/{{name}}/scale"] = ObjectPath(r with { Group = "autoscaling", Version = "v1", Kind = "Scale" }, withDelete: false);
            }
        }

        return new JsonObject
        {
            ["openapi"] = "3.0.0",
            ["info"] = new JsonObject { ["title"] = "Kubernetes (HybridServing API test server)", ["version"] = Version },
            ["paths"] = paths,
        };
    }

    private static JsonObject ObjectPath(ApiResource r, bool withDelete = true)
    {
        var path = new JsonObject
        {
            ["get"] = Operation(r, "get", []),
            ["put"] = Operation(r, "put", ["application/json"]),
            ["patch"] = Operation(r, "patch", ["application/json-patch+json", "application/merge-patch+json"]),
        };
        if (withDelete)
        {
            path["delete"] = Operation(r, "delete", ["application/json"]);
        }

        return path;
    }

    private static JsonObject Operation(ApiResource r, string action, string[] bodyTypes)
    {
        var parameters = new JsonArray();
        if (bodyTypes.Length > 0)
        {
            parameters.Add(Query("dryRun", "When present (All), the change is validated but not persisted."));
            if (action is "post" or "put" or "patch")
            {
                parameters.Add(Query("fieldValidation", "How the server treats unknown and duplicate fields: Ignore, Warn or Strict."));
                parameters.Add(Query("fieldManager", "The name of the actor making the change."));
            }
        }

        var operation = new JsonObject
        {
            ["operationId"] = action + r.Kind,
            ["x-kubernetes-action"] = action,
            ["x-kubernetes-group-version-kind"] = new JsonObject { ["group"] = r.Group, ["version"] = r.Version, ["kind"] = r.Kind },
            ["parameters"] = parameters,
            ["responses"] = new JsonObject { ["200"] = new JsonObject { ["description"] = "OK" } },
        };
        if (bodyTypes.Length > 0)
        {
            var content = new JsonObject();
            foreach (var type in bodyTypes)
            {
                content[type] = new JsonObject { ["schema"] = new JsonObject { ["type"] = "object" } };
            }

            operation["requestBody"] = new JsonObject { ["content"] = content, ["required"] = action != "delete" && action != "deletecollection" };
        }

        return operation;
    }

    private static JsonObject Query(string name, string description) => new()
    {
        ["name"] = name,
        ["in"] = "query",
        ["description"] = description,
        ["schema"] = new JsonObject { ["type"] = "string", ["uniqueItems"] = true },
    };

    private static string Hash(string document) => Convert.ToHexString(SHA512.HashData(Encoding.UTF8.GetBytes(document)));
}
