using System.Diagnostics;
using System.Net;

namespace HybridServing.ClusterShape.Tests;

/// <summary>
/// The pod network: a Linux bridge on the host holding the node's address (<c>.1</c>) and the Services' cluster
/// IPs (<c>.200</c> up), and one network namespace per pod joined to it by a veth pair, with its own loopback and
/// its own address in a /24 picked at random per run. Needs root and iproute2; <see cref="Unavailable"/> says why not.
/// </summary>
internal sealed class PodNetwork : IDisposable
{
    private readonly string _bridge;
    private readonly string _prefix;
    private readonly string _id;
    private readonly List<string> _namespaces = [];
    private int _nextPod = 2;
    private int _nextService = 200;

    private PodNetwork(string id, string prefix)
    {
        _id = id;
        _bridge = "hsbr" + id;
        _prefix = prefix;
    }

    /// <summary>The node's address on the pod network: where the API server and s3rver listen, and kubelet probes come from.</summary>
    public IPAddress NodeAddress => IPAddress.Parse(_prefix + "1");

    /// <summary>Why pods cannot get network namespaces here (not root, no iproute2), or null.</summary>
    public static string? Unavailable()
    {
        if (geteuid() != 0) return "the cluster-shaped test needs root (network namespaces, bind mounts); run it as root (CI does)";
        foreach (var tool in new[] { "ip", "mount", "setpriv" })
            if (!Environment.GetEnvironmentVariable("PATH")!.Split(':').Any(d => File.Exists(Path.Combine(d, tool))))
                return $"the cluster-shaped test needs '{tool}' on PATH (iproute2 / util-linux)";
        // Root in a container without CAP_NET_ADMIN/CAP_SYS_ADMIN: network namespaces cannot be made.
        var probe = $"hs-probe-{Environment.ProcessId}";
        try
        {
            Ip($"netns add {probe}");
            Ip($"netns delete {probe}");
        }
        catch (InvalidOperationException e)
        {
            return $"the cluster-shaped test needs network namespaces, which this machine refuses: {e.Message}";
        }
        return null;
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern uint geteuid();

    public static PodNetwork Create()
    {
        var id = Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()))[..6];
        var network = new PodNetwork(id, $"10.{Random.Shared.Next(200, 250)}.{Random.Shared.Next(0, 256)}.");
        try
        {
            Ip($"link add {network._bridge} type bridge");
            Ip($"addr add {network.NodeAddress}/24 dev {network._bridge}");
            Ip($"link set {network._bridge} up");
        }
        catch
        {
            network.Dispose();
            throw;
        }
        return network;
    }

    /// <summary>A network namespace for a pod, with loopback up and the next address on the bridge; returns (namespace, IP).</summary>
    public (string Namespace, IPAddress Address) AddPod()
    {
        var n = _nextPod++;
        var ns = $"hs-{_id}-{n}";
        var address = IPAddress.Parse(_prefix + n);
        Ip($"netns add {ns}");
        _namespaces.Add(ns);
        Ip($"link add hsv{_id}{n} type veth peer name eth0 netns {ns}");
        Ip($"link set hsv{_id}{n} master {_bridge} up");
        Ip($"-n {ns} addr add {address}/24 dev eth0");
        Ip($"-n {ns} link set eth0 up");
        Ip($"-n {ns} link set lo up");
        Ip($"-n {ns} route add default via {NodeAddress}");
        return (ns, address);
    }

    /// <summary>A Service's cluster IP: another address of the node on the bridge, where the Service proxy listens.</summary>
    public IPAddress AddClusterIp()
    {
        var address = IPAddress.Parse(_prefix + _nextService++);
        Ip($"addr add {address}/32 dev {_bridge}");
        return address;
    }

    public void Dispose()
    {
        foreach (var ns in _namespaces) Ip($"netns delete {ns}", check: false);
        Ip($"link delete {_bridge}", check: false);
    }

    private static void Ip(string arguments, bool check = true)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in arguments.Split(' ')) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (check && process.ExitCode != 0) throw new InvalidOperationException($"ip {arguments} failed ({process.ExitCode}): {error}");
    }
}
