using System.Globalization;
using System.Net;
using System.Net.Sockets;
using HybridServing.ControlPlane.Homes;
using k8s.Models;

namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>
/// Which pods are engines and where their sidecars listen. Pure. A pod the selector matched is an
/// engine once it is Running with a pod IP and not terminating; its sidecar is at
/// <c>http://{podIP}:{port}</c>, the port from the configured annotation (or the default).
/// </summary>
internal static class EnginePods
{
    public static (IReadOnlyList<EngineEndpoint> Engines, IReadOnlyList<DeclarationProblem> Problems) Select(
        IEnumerable<V1Pod> pods, string portAnnotation, int defaultPort)
    {
        var candidates = new List<(V1Pod Pod, Uri Url)>();
        var problems = new List<DeclarationProblem>();
        foreach (var pod in pods)
        {
            if (!IsServing(pod)) continue;
            var origin = $"pod {pod.Metadata.NamespaceProperty}/{pod.Metadata.Name}";
            var port = defaultPort;
            if (pod.Metadata.Annotations?.TryGetValue(portAnnotation, out var text) == true)
            {
                if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
                {
                    problems.Add(new(origin, $"{origin}: annotation {portAnnotation}='{text}' is not a port number (1-65535); the pod is not used as an engine until it is fixed."));
                    continue;
                }
            }
            if (!IPAddress.TryParse(pod.Status.PodIP, out var ip))
            {
                problems.Add(new(origin, $"{origin}: status.podIP '{pod.Status.PodIP}' is not an IP address; the pod is not used as an engine."));
                continue;
            }
            var host = ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ip}]" : ip.ToString();
            candidates.Add((pod, new Uri($"http://{host}:{port.ToString(CultureInfo.InvariantCulture)}")));
        }

        // Engines are named by pod name, as status.podAssignments shows them; pods with the same name in
        // different namespaces are told apart by their namespace.
        var duplicated = candidates.GroupBy(c => c.Pod.Metadata.Name, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet(StringComparer.Ordinal);
        var engines = candidates
            .Select(c => new EngineEndpoint(
                duplicated.Contains(c.Pod.Metadata.Name) ? $"{c.Pod.Metadata.NamespaceProperty}/{c.Pod.Metadata.Name}" : c.Pod.Metadata.Name,
                c.Pod.Spec?.NodeName ?? "",
                c.Url,
                new Dictionary<string, string>(c.Pod.Metadata.Labels ?? new Dictionary<string, string>(), StringComparer.Ordinal)))
            .OrderBy(e => e.Name, StringComparer.Ordinal)
            .ToList();
        return (engines, problems);
    }

    /// <summary>Running, with an IP, and not being deleted (a terminating pod's engine is going away: do not place on it).</summary>
    public static bool IsServing(V1Pod pod) =>
        pod.Metadata?.DeletionTimestamp is null
        && pod.Status?.Phase == "Running"
        && !string.IsNullOrEmpty(pod.Status.PodIP);
}
