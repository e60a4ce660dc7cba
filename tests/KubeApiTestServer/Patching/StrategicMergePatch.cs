using System.Text.Json.Nodes;

namespace HybridServing.KubeApiTestServer.Patching;

/// <summary>A strategic merge patch the server cannot apply (422 Invalid).</summary>
internal sealed class StrategicMergePatchException(string message) : Exception(message);

/// <summary>
/// Strategic merge patch, as <c>kubectl apply</c>, <c>kubectl set image</c> and <c>kubectl edit</c>
/// send it for built-in kinds: maps merge and <c>null</c> deletes, as in a merge patch, but lists
/// that the Kubernetes types declare with a merge key (containers, env, ports, volumes, volumeMounts,
/// conditions, ...) merge element by element, and the directives <c>$patch: replace|delete|merge</c>,
/// <c>$setElementOrder/&lt;list&gt;</c>, <c>$retainKeys</c> and <c>$deleteFromPrimitiveList/&lt;list&gt;</c>
/// are obeyed, never stored. Lists without a declared strategy are replaced, as on a real server.
/// </summary>
internal static class StrategicMergePatch
{
    private const string Directive = "$patch";
    private const string RetainKeys = "$retainKeys";
    private const string SetElementOrder = "$setElementOrder/";
    private const string DeleteFromPrimitiveList = "$deleteFromPrimitiveList/";

    /// <summary>How a list merges: by the value of a key in each element, as a set of primitives, or (null) replaced whole.</summary>
    private sealed record ListStrategy(string? MergeKey);

    private static readonly ListStrategy Primitives = new((string?)null);

    private static readonly string[] ContainerLists = ["containers", "initContainers", "ephemeralContainers"];

    public static JsonObject Apply(string kind, JsonObject target, JsonNode? patch)
    {
        if (patch is not JsonObject patchObject)
        {
            throw new StrategicMergePatchException("a strategic merge patch must be a JSON object");
        }

        return MergeMap(target, patchObject, kind, "") ?? throw new StrategicMergePatchException("the patch deletes the whole object ($patch: delete at the top level)");
    }

    /// <summary>The list strategy the Kubernetes Go types declare (patchStrategy/patchMergeKey) for a field path such as <c>spec.template.spec.containers[].env</c>.</summary>
    private static ListStrategy? StrategyFor(string kind, string path)
    {
        switch (path)
        {
            case "metadata.finalizers":
                return Primitives;
            case "metadata.ownerReferences":
                return new ListStrategy("uid");
            case "status.conditions":
                return new ListStrategy("type");
        }

        var podSpec = kind switch
        {
            "Pod" => "spec.",
            "Deployment" or "ReplicaSet" or "StatefulSet" or "DaemonSet" or "Job" or "PodTemplate" => "spec.template.spec.",
            _ => null,
        };
        if (podSpec is not null && path.StartsWith(podSpec, StringComparison.Ordinal))
        {
            var field = path[podSpec.Length..];
            switch (field)
            {
                case "volumes" or "imagePullSecrets" or "schedulingGates" or "resourceClaims":
                    return new ListStrategy("name");
                case "hostAliases":
                    return new ListStrategy("ip");
                case "topologySpreadConstraints":
                    return new ListStrategy("topologyKey");
            }

            if (ContainerLists.Contains(field))
            {
                return new ListStrategy("name");
            }

            foreach (var list in ContainerLists)
            {
                switch (field.StartsWith(list + "[].", StringComparison.Ordinal) ? field[(list.Length + 3)..] : null)
                {
                    case "ports":
                        return new ListStrategy("containerPort");
                    case "env":
                        return new ListStrategy("name");
                    case "volumeMounts":
                        return new ListStrategy("mountPath");
                    case "volumeDevices":
                        return new ListStrategy("devicePath");
                }
            }
        }

        return (kind, path) switch
        {
            ("Pod", "status.podIPs" or "status.hostIPs") => new ListStrategy("ip"),
            ("Service", "spec.ports") => new ListStrategy("port"),
            ("Node", "status.addresses") => new ListStrategy("type"),
            ("Node", "spec.podCIDRs") => Primitives,
            ("ServiceAccount", "secrets") => new ListStrategy("name"),
            _ => null,
        };
    }

    /// <summary>Merges a patch map into a target map; null when the patch says <c>$patch: delete</c>.</summary>
    private static JsonObject? MergeMap(JsonObject? target, JsonObject patch, string kind, string path)
    {
        switch (Text(patch[Directive]))
        {
            case "delete":
                return null;
            case "replace":
                return MergeMap(null, Without(patch, Directive), kind, path);
            case null or "merge":
                break;
            case var other:
                throw new StrategicMergePatchException($"unknown patch type: {other} in map at {Describe(path)}");
        }

        var result = target is null ? new JsonObject() : (JsonObject)target.DeepClone();
        foreach (var (name, value) in patch)
        {
            if (name.StartsWith('$'))
            {
                continue;
            }

            var fieldPath = path.Length == 0 ? name : path + "." + name;
            switch (value)
            {
                case null:
                    result.Remove(name);
                    break;
                case JsonObject map:
                    var merged = MergeMap(result[name] as JsonObject, map, kind, fieldPath);
                    if (merged is null)
                    {
                        result.Remove(name);
                    }
                    else
                    {
                        result[name] = merged;
                    }

                    break;
                case JsonArray list:
                    result[name] = MergeList(result[name] as JsonArray, list, kind, fieldPath);
                    break;
                default:
                    result[name] = value.DeepClone();
                    break;
            }
        }

        foreach (var (name, value) in patch.Where(p => p.Key.StartsWith(DeleteFromPrimitiveList, StringComparison.Ordinal)))
        {
            var field = name[DeleteFromPrimitiveList.Length..];
            if (value is not JsonArray doomed)
            {
                throw new StrategicMergePatchException($"{name} must be a list at {Describe(path)}");
            }

            if (result[field] is JsonArray current)
            {
                result[field] = new JsonArray(current.Where(item => !doomed.Any(d => JsonNode.DeepEquals(d, item))).Select(i => i?.DeepClone()).ToArray());
            }
        }

        foreach (var (name, value) in patch.Where(p => p.Key.StartsWith(SetElementOrder, StringComparison.Ordinal)))
        {
            var field = name[SetElementOrder.Length..];
            if (value is not JsonArray order)
            {
                throw new StrategicMergePatchException($"{name} must be a list at {Describe(path)}");
            }

            if (result[field] is JsonArray current)
            {
                result[field] = Ordered(current, order, StrategyFor(kind, (path.Length == 0 ? "" : path + ".") + field)?.MergeKey);
            }
        }

        if (patch[RetainKeys] is { } retain)
        {
            if (retain is not JsonArray keys || keys.Any(k => Text(k) is null))
            {
                throw new StrategicMergePatchException($"$retainKeys must be a list of field names at {Describe(path)}");
            }

            var kept = keys.Select(Text).ToHashSet(StringComparer.Ordinal);
            foreach (var name in result.Select(p => p.Key).Where(k => !kept.Contains(k)).ToArray())
            {
                result.Remove(name);
            }
        }

        return result;
    }

    private static JsonArray MergeList(JsonArray? target, JsonArray patch, string kind, string path)
    {
        var strategy = StrategyFor(kind, path);
        var replace = patch.OfType<JsonObject>().Any(e => Text(e[Directive]) == "replace" && e.Count == 1);
        var items = patch.Where(e => !(e is JsonObject o && Text(o[Directive]) is "replace" or "merge" && o.Count == 1)).ToArray();
        if (strategy is null || replace)
        {
            // Replaced whole (atomic lists, or $patch: replace): elements lose their directives.
            return new JsonArray(items.Select(e => e is JsonObject o ? MergeMap(null, o, kind, path + "[]") : e?.DeepClone()).OfType<JsonNode>().ToArray());
        }

        var result = target is null ? new JsonArray() : (JsonArray)target.DeepClone();
        if (strategy.MergeKey is null)
        {
            foreach (var item in items.Where(i => !result.Any(r => JsonNode.DeepEquals(r, i))))
            {
                result.Add(item?.DeepClone());
            }

            return result;
        }

        var key = strategy.MergeKey;
        foreach (var item in items)
        {
            if (item is not JsonObject element || element[key] is not JsonValue keyValue)
            {
                throw new StrategicMergePatchException($"{Describe(path)}: map: {item?.ToJsonString()} does not contain declared merge key: {key}");
            }

            var index = IndexOf(result, key, keyValue);
            if (Text(element[Directive]) == "delete")
            {
                if (index >= 0)
                {
                    result.RemoveAt(index);
                }

                continue;
            }

            var merged = MergeMap(index >= 0 ? result[index] as JsonObject : null, element, kind, path + "[]");
            if (index >= 0)
            {
                result[index] = merged;
            }
            else
            {
                result.Add(merged);
            }
        }

        return result;
    }

    /// <summary><c>$setElementOrder</c>: the listed elements in the listed order, then the others as they were.</summary>
    private static JsonArray Ordered(JsonArray current, JsonArray order, string? key)
    {
        int Rank(JsonNode? item)
        {
            for (var i = 0; i < order.Count; i++)
            {
                var matches = key is null ? JsonNode.DeepEquals(order[i], item) : JsonNode.DeepEquals(order[i]?[key], item?[key]);
                if (matches)
                {
                    return i;
                }
            }

            return order.Count;
        }

        return new JsonArray(current.Select((item, i) => (item, i)).OrderBy(p => Rank(p.item)).ThenBy(p => p.i).Select(p => p.item?.DeepClone()).ToArray());
    }

    private static int IndexOf(JsonArray list, string key, JsonValue value)
    {
        for (var i = 0; i < list.Count; i++)
        {
            if (list[i] is JsonObject o && JsonNode.DeepEquals(o[key], value))
            {
                return i;
            }
        }

        return -1;
    }

    private static JsonObject Without(JsonObject map, string name)
    {
        var copy = (JsonObject)map.DeepClone();
        copy.Remove(name);
        return copy;
    }

    private static string Describe(string path) => path.Length == 0 ? "the top level" : path;

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}
