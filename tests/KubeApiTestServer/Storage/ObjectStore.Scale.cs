using System.Globalization;
using System.Text.Json.Nodes;
using HybridServing.KubeApiTestServer.Http;
using HybridServing.KubeApiTestServer.Resources;

namespace HybridServing.KubeApiTestServer.Storage;

/// <summary>
/// The <c>scale</c> subresource: an <c>autoscaling/v1</c> <c>Scale</c> view of an object's
/// <c>spec.replicas</c> (desired), <c>status.replicas</c> (as the object's status reports it) and
/// <c>spec.selector</c> (as a label selector string), sharing the object's resourceVersion.
/// </summary>
internal sealed partial class ObjectStore
{
    public JsonObject GetScale(ApiResource resource, string ns, string name) => ScaleOf(Get(resource, ns, name));

    /// <summary>
    /// PUT or PATCH on <c>.../scale</c>: <paramref name="change"/> turns the current Scale into the
    /// requested one; a resourceVersion in it is a precondition; only <c>spec.replicas</c> is written.
    /// </summary>
    public JsonObject UpdateScale(ApiResource resource, string ns, string name, Func<JsonObject, JsonObject> change)
    {
        lock (_gate)
        {
            var state = State(resource);
            var current = Find(state, ns, name) ?? throw ApiError.NotFound(resource, name);
            var requested = change(ScaleOf(current));
            var apiVersion = StoredObject.Text(requested["apiVersion"]);
            var kind = StoredObject.Text(requested["kind"]);
            if ((!string.IsNullOrEmpty(apiVersion) && apiVersion != "autoscaling/v1") || (!string.IsNullOrEmpty(kind) && kind != "Scale"))
            {
                throw ApiError.BadRequest($"the body of a scale request must be an autoscaling/v1 Scale, not {apiVersion} {kind}");
            }

            CheckIdentity(resource, ns, name, Metadata(requested));
            CheckPrecondition(current, Metadata(requested));
            var replicas = requested["spec"]?["replicas"];
            long count = 0;
            if (replicas is not null && !(replicas is JsonValue value && long.TryParse(value.ToJsonString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out count)))
            {
                throw new ApiError(422, "Invalid", $"Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas.ToJsonString()}: must be an integer")
                {
                    DetailsName = name,
                    DetailsResource = resource,
                    Causes = [("spec.replicas", "must be an integer")],
                };
            }

            if (count < 0 || count > int.MaxValue)
            {
                throw new ApiError(422, "Invalid", $"Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {count}: must be greater than or equal to 0")
                {
                    DetailsName = name,
                    DetailsResource = resource,
                    Causes = [("spec.replicas", "must be greater than or equal to 0")],
                };
            }

            var next = current.CloneNode();
            if (next["spec"] is not JsonObject spec)
            {
                next["spec"] = spec = new JsonObject();
            }

            spec["replicas"] = count;
            return ScaleOf(Commit(state, current, next, statusOnly: false));
        }
    }

    private static JsonObject ScaleOf(StoredObject stored)
    {
        var node = stored.CloneNode();
        var meta = node["metadata"] as JsonObject;
        var scaleMeta = new JsonObject { ["name"] = stored.Name };
        if (stored.Namespace.Length > 0)
        {
            scaleMeta["namespace"] = stored.Namespace;
        }

        foreach (var field in new[] { "uid", "resourceVersion", "creationTimestamp" })
        {
            if (meta?[field] is { } value)
            {
                scaleMeta[field] = value.DeepClone();
            }
        }

        var status = new JsonObject { ["replicas"] = StoredObject.Number(node["status"]?["replicas"]) ?? 0 };
        if (node["spec"]?["selector"] is JsonObject selector && SelectorText(selector) is { Length: > 0 } text)
        {
            status["selector"] = text;
        }

        return new JsonObject
        {
            ["kind"] = "Scale",
            ["apiVersion"] = "autoscaling/v1",
            ["metadata"] = scaleMeta,
            ["spec"] = new JsonObject { ["replicas"] = StoredObject.Number(node["spec"]?["replicas"]) ?? 1 },
            ["status"] = status,
        };
    }

    /// <summary>A LabelSelector object as the string form a Scale reports (<c>app=x,tier in (a,b)</c>).</summary>
    private static string SelectorText(JsonObject selector)
    {
        var parts = new List<string>();
        if (selector["matchLabels"] is JsonObject labels)
        {
            parts.AddRange(labels.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + StoredObject.Text(p.Value)));
        }

        foreach (var expression in (selector["matchExpressions"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var key = StoredObject.Text(expression["key"]);
            var values = (expression["values"] as JsonArray ?? []).Select(StoredObject.Text).OrderBy(v => v, StringComparer.Ordinal);
            parts.Add(StoredObject.Text(expression["operator"]) switch
            {
                "In" => $"{key} in ({string.Join(",", values)})",
                "NotIn" => $"{key} notin ({string.Join(",", values)})",
                "Exists" => key ?? "",
                "DoesNotExist" => "!" + key,
                var op => throw ApiError.BadRequest($"unknown label selector operator {op}"),
            });
        }

        return string.Join(",", parts);
    }
}
