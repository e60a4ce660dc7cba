using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using HybridServing.KubeApiTestServer;
using k8s;
using k8s.Models;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace HybridServing.ClusterShape.Tests;

/// <summary>
/// What a cluster adds to its API server, for the Deployments of one namespace: the ReplicaSet controller and
/// scheduler (<c>replicas</c> pods per Deployment, created in the API server on one node), the kubelet (volumes
/// written as it writes them, env with downward-API and Secret values, containers started in order as processes
/// in the pod's network and mount namespaces, httpGet probes, pod status) and kube-proxy (a cluster IP per
/// Service, relayed to the ready pods it selects; Service names resolve through each pod's <c>/etc/hosts</c>).
/// Images are this repository's projects, found by their <c>ContainerRepository</c>:<c>ContainerImageTag</c>;
/// <c>vllm/vllm-openai</c> runs the MockEngine with the container's args unchanged (it takes vLLM's flags).
/// </summary>
internal sealed partial class Cluster : IAsyncDisposable
{
    public const string NodeName = "cluster-shape-node";
    private const string ServiceAccountPath = "/var/run/secrets/kubernetes.io/serviceaccount";
    private const int AppUid = 1654; // the .NET images' non-root user (APP_UID)
    private static readonly string[] DotnetImageEnv = ["APP_UID=1654", "ASPNETCORE_HTTP_PORTS=8080", "DOTNET_RUNNING_IN_CONTAINER=true"];

    private readonly KubeApiServer _api;
    private readonly Kubernetes _client;
    private readonly PodNetwork _network;
    private readonly string _root;
    private readonly Dictionary<string, string> _images;
    private readonly List<Pod> _pods = [];
    private readonly List<ServiceProxy> _proxies = [];
    private readonly List<string> _mountPoints = [];
    private readonly Dictionary<string, IPAddress> _clusterIps = [];
    private readonly IReadOnlyDictionary<string, IPAddress> _extraHosts;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _probing = [];

    /// <param name="hosts">Names outside the namespace's Services that the cluster's DNS resolves (e.g. an object store's), with their address.</param>
    public Cluster(KubeApiServer api, PodNetwork network, string repository, string root, IReadOnlyDictionary<string, IPAddress>? hosts = null)
    {
        _extraHosts = hosts ?? new Dictionary<string, IPAddress>();
        _api = api;
        _client = api.CreateClient();
        _network = network;
        _root = root;
        _images = Images(repository);
    }

    public IReadOnlyList<Pod> Pods => _pods;

    /// <summary>What went wrong that a kubelet would have acted on: a container that exited, a failing liveness probe.</summary>
    public ConcurrentQueue<string> Failures { get; } = new();

    /// <summary>The cluster IP the Service proxy listens on for <paramref name="service"/>.</summary>
    public IPAddress ClusterIp(string service) => _clusterIps[service];

    public IEnumerable<Pod> PodsOf(string deployment) => _pods.Where(p => p.Deployment == deployment && !p.Stopped);

    /// <summary>Image name:tag → the program it runs (<c>HybridServing.X.dll</c> in <c>X/bin/{configuration}/net10.0</c>).</summary>
    private static Dictionary<string, string> Images(string repository)
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        var configuration = output.Parent!.Name;
        var images = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var project in Directory.GetDirectories(repository).SelectMany(d => Directory.GetFiles(d, "*.csproj")))
        {
            var text = File.ReadAllText(project);
            if (Regex.Match(text, "<ContainerRepository>([^<]+)</ContainerRepository>") is not { Success: true } image) continue;
            var tag = Regex.Match(text, "<ContainerImageTag>([^<]+)</ContainerImageTag>") is { Success: true } t ? t.Groups[1].Value : "latest";
            var name = Path.GetFileNameWithoutExtension(project);
            images[$"{image.Groups[1].Value}:{tag}"] = Path.Combine(Path.GetDirectoryName(project)!, "bin", configuration, output.Name, $"HybridServing.{name}.dll");
        }
        return images;
    }

    private (string Dll, bool Dotnet) Program(string image)
    {
        if (_images.TryGetValue(image, out var dll)) return (dll, true);
        // The vLLM image: the MockEngine is its stand-in and takes vLLM's own flags, so the args pass unchanged.
        if (image.StartsWith("vllm/vllm-openai:", StringComparison.Ordinal))
            return (_images.Single(i => i.Key.Contains("/mock-engine:", StringComparison.Ordinal)).Value, false);
        throw new InvalidOperationException($"No project in this repository builds image '{image}' (known: {string.Join(", ", _images.Keys)}).");
    }

    /// <summary>Schedules and starts every Deployment of <paramref name="ns"/> and the Services selecting them.</summary>
    public async Task StartAsync(string ns)
    {
        var deployments = (await _client.AppsV1.ListNamespacedDeploymentAsync(ns)).Items;
        foreach (var deployment in deployments)
        {
            var template = deployment.Spec.Template;
            var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(KubernetesJson.Serialize(template))))[..10];
            for (var i = 0; i < (deployment.Spec.Replicas ?? 1); i++)
            {
                var (netns, address) = _network.AddPod();
                var labels = new Dictionary<string, string>(template.Metadata.Labels ?? new Dictionary<string, string>()) { ["pod-template-hash"] = hash };
                _pods.Add(new Pod
                {
                    Name = $"{deployment.Name()}-{hash}-{Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()))[..5]}",
                    Namespace = ns, Deployment = deployment.Name(), Address = address, NetworkNamespace = netns,
                    Spec = template.Spec, Labels = labels, Annotations = template.Metadata.Annotations ?? new Dictionary<string, string>(),
                    Directory = Directory.CreateDirectory(Path.Combine(_root, "pods", $"{deployment.Name()}-{i}")).FullName,
                });
            }
        }

        var hosts = new StringBuilder("# Kubernetes-managed hosts file (the cluster-shaped test's stand-in for cluster DNS).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        foreach (var service in (await _client.CoreV1.ListNamespacedServiceAsync(ns)).Items.Where(s => s.Spec.Selector is { Count: > 0 }))
        {
            var clusterIp = _network.AddClusterIp();
            _clusterIps[service.Name()] = clusterIp;
            var selected = _pods.Where(p => service.Spec.Selector.All(kv => p.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value)).ToList();
            foreach (var port in service.Spec.Ports)
                _proxies.Add(new ServiceProxy(new IPEndPoint(clusterIp, port.Port),
                    () => [.. selected.Where(p => p.Ready).Select(p => new IPEndPoint(p.Address, p.Port(port.TargetPort ?? port.Port.ToString(System.Globalization.CultureInfo.InvariantCulture))))]));
            var name = service.Name();
            hosts.Append(CultureInfo($"{clusterIp}\t{name}.{ns}.svc.cluster.local {name}.{ns}.svc {name}.{ns} {name}\n"));
        }

        foreach (var (name, address) in _extraHosts) hosts.Append(CultureInfo($"{address}\t{name}\n"));
        await Task.WhenAll(_pods.Select(p => StartPodAsync(p, hosts.ToString())));
    }

    private static string CultureInfo(FormattableString s) => s.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private async Task StartPodAsync(Pod pod, string hosts)
    {
        var spec = pod.Spec;
        var scheduled = KubernetesJson.Deserialize<V1PodSpec>(KubernetesJson.Serialize(spec));
        scheduled.NodeName = NodeName;
        var created = await _client.CoreV1.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = pod.Name, NamespaceProperty = pod.Namespace, Labels = pod.Labels, Annotations = pod.Annotations },
            Spec = scheduled,
        }, pod.Namespace);
        pod.Uid = created.Uid();

        var volumes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var volume in spec.Volumes ?? [])
            volumes[volume.Name] = await VolumeAsync(pod, volume);
        var account = await _client.CoreV1.ReadNamespacedServiceAccountAsync(spec.ServiceAccountName ?? "default", pod.Namespace);
        var automount = spec.AutomountServiceAccountToken ?? account.AutomountServiceAccountToken ?? true;
        if (automount)
        {
            // The ServiceAccount admission plugin's kube-api-access volume, in every container without a mount there.
            volumes["kube-api-access"] = await VolumeAsync(pod, new V1Volume
            {
                Name = "kube-api-access",
                Projected = new V1ProjectedVolumeSource
                {
                    Sources =
                    [
                        new V1VolumeProjection { ServiceAccountToken = new V1ServiceAccountTokenProjection { Path = "token" } },
                        new V1VolumeProjection { ConfigMap = new V1ConfigMapProjection { Name = "kube-root-ca.crt", Items = [new V1KeyToPath { Key = "ca.crt", Path = "ca.crt" }] } },
                        new V1VolumeProjection { DownwardAPI = new V1DownwardAPIProjection { Items = [new V1DownwardAPIVolumeFile { Path = "namespace", FieldRef = new V1ObjectFieldSelector { FieldPath = "metadata.namespace" } }] } },
                    ],
                },
            });
        }
        var hostsFile = Path.Combine(pod.Directory, "hosts");
        await File.WriteAllTextAsync(hostsFile, hosts + $"{pod.Address}\t{pod.Name}\n");

        // Native sidecars (init containers with restartPolicy Always) start first, each started before the next;
        // other init containers run to completion; then the app containers.
        foreach (var init in spec.InitContainers ?? [])
        {
            var container = Start(pod, init, volumes, hostsFile, automount, sidecar: init.RestartPolicy == "Always");
            if (!container.Sidecar)
            {
                await container.Process!.WaitForExitAsync(_stop.Token);
                if (container.Process.ExitCode != 0) throw new InvalidOperationException($"{pod.Name}: init container {init.Name} exited {container.Process.ExitCode}:\n{container.Tail(40)}");
                continue;
            }
            while (!container.Started)
            {
                await ProbeAsync(pod, container);
                if (container.Process!.HasExited) throw new InvalidOperationException($"{pod.Name}: sidecar {init.Name} exited {container.Process.ExitCode}:\n{container.Tail(40)}");
                if (!container.Started) await Task.Delay(200, _stop.Token);
            }
        }
        foreach (var app in spec.Containers)
            Start(pod, app, volumes, hostsFile, automount, sidecar: false);
        await WriteStatusAsync(pod);
        _probing.Add(ProbeLoopAsync(pod));
    }

    private Container Start(Pod pod, V1Container spec, Dictionary<string, string> volumes, string hostsFile, bool automount, bool sidecar)
    {
        if (spec.Command is { Count: > 0 }) throw new NotSupportedException($"{pod.Name}/{spec.Name}: 'command' replaces the image's entrypoint, which this test cannot map onto a project.");
        if (spec.EnvFrom is { Count: > 0 }) throw new NotSupportedException($"{pod.Name}/{spec.Name}: envFrom is not run by this test.");
        var (dll, dotnetImage) = Program(spec.Image);

        // What the container runtime sets: PATH, HOSTNAME, and HOME from the image user's passwd entry.
        var env = new List<KeyValuePair<string, string>>
        {
            new("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), new("HOSTNAME", pod.Name), new("HOME", dotnetImage ? "/home/app" : "/root"),
        };
        if (dotnetImage) env.AddRange(DotnetImageEnv.Select(e => new KeyValuePair<string, string>(e[..e.IndexOf('=')], e[(e.IndexOf('=') + 1)..])));
        var api = new Uri(_api.Url);
        env.Add(new("KUBERNETES_SERVICE_HOST", api.Host));
        env.Add(new("KUBERNETES_SERVICE_PORT", api.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        env.Add(new("KUBERNETES_SERVICE_PORT_HTTPS", api.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        foreach (var variable in spec.Env ?? [])
        {
            var value = variable.ValueFrom switch
            {
                null => Expand(variable.Value ?? "", env),
                { FieldRef: { } field } => Field(pod, field.FieldPath),
                { SecretKeyRef: { } key } => SecretValue(pod.Namespace, key.Name, key.Key, key.Optional == true),
                { ConfigMapKeyRef: { } key } => ConfigMapValue(pod.Namespace, key.Name, key.Key, key.Optional == true),
                _ => throw new NotSupportedException($"{pod.Name}/{spec.Name}: env {variable.Name} uses a valueFrom this test does not run."),
            };
            if (value is null) continue; // an optional key that is absent: the variable is not set
            env.RemoveAll(e => e.Key == variable.Name);
            env.Add(new(variable.Name, value));
        }

        var mounts = new List<(string Source, string Target, bool ReadOnly)>();
        foreach (var mount in spec.VolumeMounts ?? [])
        {
            if (!string.IsNullOrEmpty(mount.SubPath)) throw new NotSupportedException($"{pod.Name}/{spec.Name}: subPath mounts are not run by this test.");
            mounts.Add((volumes[mount.Name], mount.MountPath, mount.ReadOnlyProperty == true));
        }
        if (automount && mounts.All(m => m.Target != ServiceAccountPath)) mounts.Add((volumes["kube-api-access"], ServiceAccountPath, true));

        var script = new StringBuilder("set -e\n");
        foreach (var (source, target, readOnly) in mounts)
        {
            EnsureMountPoint(target);
            script.Append(CultureInfo($"mount --bind {Quote(source)} {Quote(target)}\n"));
            if (readOnly) script.Append(CultureInfo($"mount -o remount,bind,ro {Quote(target)}\n"));
        }
        script.Append(CultureInfo($"mount --bind {Quote(hostsFile)} /etc/hosts\n"));
        var security = spec.SecurityContext;
        if (security?.ReadOnlyRootFilesystem == true) script.Append("mount -o remount,bind,ro /\n");
        script.Append("exec \"$@\"\n");

        var start = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!, // the image's WORKDIR /app
        };
        foreach (var a in new[] { "netns", "exec", pod.NetworkNamespace, "sh", "-c", script.ToString(), "sh" }) start.ArgumentList.Add(a);
        var uid = security?.RunAsUser ?? pod.Spec.SecurityContext?.RunAsUser ?? (dotnetImage ? AppUid : 0);
        if ((security?.RunAsNonRoot ?? pod.Spec.SecurityContext?.RunAsNonRoot) == true && uid == 0)
            throw new InvalidOperationException($"{pod.Name}/{spec.Name}: runAsNonRoot, but image {spec.Image} runs as root: the kubelet refuses to start it.");
        if (uid != 0) foreach (var a in new[] { "setpriv", $"--reuid={uid}", $"--regid={uid}", "--clear-groups" }) start.ArgumentList.Add(a);
        start.ArgumentList.Add("env");
        start.ArgumentList.Add("-i");
        foreach (var (key, value) in env) start.ArgumentList.Add($"{key}={value}");
        start.ArgumentList.Add(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet");
        start.ArgumentList.Add(dll);
        foreach (var arg in spec.Args ?? []) start.ArgumentList.Add(Expand(arg, env));

        var container = new Container { Spec = spec, Sidecar = sidecar };
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => container.Append(e.Data);
        process.ErrorDataReceived += (_, e) => container.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        container.Process = process;
        pod.Containers.Add(container);
        return container;
    }

    /// <summary>A mount target that does not exist on the host is made (empty, removed afterwards): a container's image would have it.</summary>
    private void EnsureMountPoint(string target)
    {
        lock (_mountPoints)
        {
            var missing = new List<string>();
            for (var dir = target; !Directory.Exists(dir) && !File.Exists(dir); dir = Path.GetDirectoryName(dir)!) missing.Add(dir);
            missing.Reverse();
            foreach (var dir in missing)
            {
                Directory.CreateDirectory(dir);
                _mountPoints.Add(dir);
            }
        }
    }

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>$(VAR) references to variables defined earlier, as the kubelet expands env values and args; $$ escapes.</summary>
    private static string Expand(string value, List<KeyValuePair<string, string>> env) =>
        VariableReference().Replace(value, m => m.Value.StartsWith("$$", StringComparison.Ordinal) ? m.Value[1..]
            : env.LastOrDefault(e => e.Key == m.Groups[1].Value) is { Key: not null } found ? found.Value : m.Value);

    [GeneratedRegex(@"\$?\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")]
    private static partial Regex VariableReference();

    private static string Field(Pod pod, string path) => path switch
    {
        "metadata.name" => pod.Name,
        "metadata.namespace" => pod.Namespace,
        "metadata.uid" => pod.Uid,
        "spec.nodeName" => NodeName,
        "spec.serviceAccountName" => pod.Spec.ServiceAccountName ?? "default",
        "status.podIP" or "status.podIPs" => pod.Address.ToString(),
        _ when LabelOrAnnotation().Match(path) is { Success: true } m
            => (m.Groups[1].Value == "labels" ? pod.Labels : pod.Annotations).TryGetValue(m.Groups[2].Value, out var v) ? v : "",
        _ => throw new NotSupportedException($"{pod.Name}: fieldRef '{path}' is not one the kubelet resolves (or not run by this test)."),
    };

    [GeneratedRegex(@"^metadata\.(labels|annotations)\['([^']+)'\]$")]
    private static partial Regex LabelOrAnnotation();

    private string? SecretValue(string ns, string name, string key, bool optional)
    {
        var secret = _api.Get<V1Secret>(ns, name);
        if (secret?.Data?.TryGetValue(key, out var bytes) == true) return Encoding.UTF8.GetString(bytes);
        return optional ? null : throw new InvalidOperationException($"secret {ns}/{name} (key {key}) is missing: the pod would stay in CreateContainerConfigError.");
    }

    private string? ConfigMapValue(string ns, string name, string key, bool optional)
    {
        var map = _api.Get<V1ConfigMap>(ns, name);
        if (map?.Data?.TryGetValue(key, out var value) == true) return value;
        return optional ? null : throw new InvalidOperationException($"configmap {ns}/{name} (key {key}) is missing: the pod would stay in CreateContainerConfigError.");
    }

    private async Task<string> VolumeAsync(Pod pod, V1Volume volume)
    {
        var dir = Directory.CreateDirectory(Path.Combine(pod.Directory, "volumes", volume.Name)).FullName;
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        void Add(IDictionary<string, byte[]> data, IList<V1KeyToPath>? items, string what)
        {
            if (items is null) foreach (var (k, v) in data) files[k] = v;
            else foreach (var item in items) files[item.Path] = data.TryGetValue(item.Key, out var v) ? v : throw new InvalidOperationException($"{pod.Name}: volume {volume.Name}: {what} has no key {item.Key}.");
        }
        IDictionary<string, byte[]>? Secret(string name) => _api.Get<V1Secret>(pod.Namespace, name) is { } s ? s.Data ?? new Dictionary<string, byte[]>() : null;
        IDictionary<string, byte[]>? ConfigMap(string name) => _api.Get<V1ConfigMap>(pod.Namespace, name) is { } m
            ? (m.Data ?? new Dictionary<string, string>()).ToDictionary(kv => kv.Key, kv => Encoding.UTF8.GetBytes(kv.Value)) : null;
        string Missing(string kind, string name) => $"{pod.Name}: volume {volume.Name}: {kind} {pod.Namespace}/{name} does not exist: the pod would stay in ContainerCreating.";

        switch (volume)
        {
            case { EmptyDir: not null }:
                File.SetUnixFileMode(dir, (UnixFileMode)0b111_111_111); // emptyDir is world-writable
                return dir;
            case { Secret: { } secret }:
                if (Secret(secret.SecretName) is { } data) Add(data, secret.Items, "secret " + secret.SecretName);
                else if (secret.Optional != true) throw new InvalidOperationException(Missing("secret", secret.SecretName));
                break;
            case { ConfigMap: { } configMap }:
                if (ConfigMap(configMap.Name) is { } values) Add(values, configMap.Items, "configmap " + configMap.Name);
                else if (configMap.Optional != true) throw new InvalidOperationException(Missing("configmap", configMap.Name));
                break;
            case { Projected: { } projected }:
                foreach (var source in projected.Sources)
                {
                    if (source.ServiceAccountToken is { } token)
                        files[token.Path] = Encoding.ASCII.GetBytes($"cluster-shape-token.{pod.Spec.ServiceAccountName ?? "default"}.{pod.Name}"); // the API test server authenticates nobody
                    else if (source.ConfigMap is { } map)
                        Add(ConfigMap(map.Name) ?? throw new InvalidOperationException(Missing("configmap", map.Name)), map.Items, "configmap " + map.Name);
                    else if (source.Secret is { } secret)
                        Add(Secret(secret.Name) ?? throw new InvalidOperationException(Missing("secret", secret.Name)), secret.Items, "secret " + secret.Name);
                    else if (source.DownwardAPI is { } downward)
                        foreach (var item in downward.Items) files[item.Path] = Encoding.UTF8.GetBytes(Field(pod, item.FieldRef.FieldPath));
                    else throw new NotSupportedException($"{pod.Name}: volume {volume.Name}: a projection this test does not run.");
                }
                break;
            default:
                throw new NotSupportedException($"{pod.Name}: volume {volume.Name}: only emptyDir, secret, configMap and projected volumes are run by this test.");
        }
        await WriteAtomicallyAsync(dir, files);
        return dir;
    }

    /// <summary>The kubelet's atomic writer layout: files in a timestamped directory, <c>..data</c> linking to it, and each name linking through <c>..data</c>.</summary>
    private static async Task WriteAtomicallyAsync(string dir, Dictionary<string, byte[]> files)
    {
        var stamp = CultureInfo($"..{DateTime.UtcNow:yyyy_MM_dd_HH_mm_ss.fffffff}");
        var payload = Directory.CreateDirectory(Path.Combine(dir, stamp)).FullName;
        foreach (var (path, bytes) in files)
        {
            var file = Path.Combine(payload, path);
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            await File.WriteAllBytesAsync(file, bytes);
            File.SetUnixFileMode(file, (UnixFileMode)0b110_100_100); // defaultMode 0644
        }
        File.CreateSymbolicLink(Path.Combine(dir, "..data"), stamp);
        foreach (var top in files.Keys.Select(p => p.Split('/')[0]).Distinct())
            File.CreateSymbolicLink(Path.Combine(dir, top), Path.Combine("..data", top));
    }

    private async Task ProbeLoopAsync(Pod pod)
    {
        try
        {
            while (!_stop.IsCancellationRequested && !pod.Stopped)
            {
                var wasReady = pod.Ready;
                foreach (var container in pod.Containers) await ProbeAsync(pod, container);
                if (pod.Ready != wasReady) await WriteStatusAsync(pod);
                await Task.Delay(500, _stop.Token);
            }
        }
        catch (OperationCanceledException) { }
    }

    private async Task ProbeAsync(Pod pod, Container container)
    {
        var spec = container.Spec;
        if (container.Process!.HasExited)
        {
            if (!pod.Stopped && !container.ExitReported)
            {
                container.ExitReported = true;
                Failures.Enqueue($"{pod.Name}/{spec.Name} exited with {container.Process.ExitCode} (the kubelet would restart it):\n{container.Tail(30)}");
            }
            container.Ready = false;
            return;
        }
        if (!container.Started)
        {
            container.Started = spec.StartupProbe is null || await ProbeAsync(pod, spec.StartupProbe);
            if (!container.Started) return;
        }
        container.Ready = spec.ReadinessProbe is null || await ProbeAsync(pod, spec.ReadinessProbe);
        container.EverReady |= container.Ready;
        if (spec.LivenessProbe is { } liveness && container.EverReady)
        {
            if (await ProbeAsync(pod, liveness)) container.LivenessFailingSince = null;
            else if ((container.LivenessFailingSince ??= DateTime.UtcNow) < DateTime.UtcNow.AddSeconds(-(liveness.FailureThreshold ?? 3) * (liveness.PeriodSeconds ?? 10)))
                Failures.Enqueue($"{pod.Name}/{spec.Name}: liveness probe {liveness.HttpGet?.Path} failing for {(liveness.FailureThreshold ?? 3)} periods (the kubelet would restart it).");
        }
    }

    private static readonly HttpClient Prober = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = Timeout.InfiniteTimeSpan };

    private static async Task<bool> ProbeAsync(Pod pod, V1Probe probe)
    {
        var get = probe.HttpGet ?? throw new NotSupportedException($"{pod.Name}: only httpGet probes are run by this test.");
        var url = new UriBuilder(get.Scheme?.ToLowerInvariant() ?? "http", get.Host ?? pod.Address.ToString(), pod.Port(get.Port), get.Path ?? "/").Uri;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(Math.Max(1, probe.TimeoutSeconds ?? 1)));
        try
        {
            using var response = await Prober.GetAsync(url, timeout.Token);
            return (int)response.StatusCode is >= 200 and < 400;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            return false;
        }
    }

    private async Task WriteStatusAsync(Pod pod)
    {
        string Bool(bool b) => b ? "True" : "False";
        var now = DateTime.UtcNow;
        var status = new V1PodStatus
        {
            Phase = "Running", PodIP = pod.Address.ToString(), PodIPs = [new V1PodIP { Ip = pod.Address.ToString() }], HostIP = _network.NodeAddress.ToString(),
            StartTime = pod.Created,
            Conditions =
            [
                new V1PodCondition { Type = "PodScheduled", Status = "True", LastTransitionTime = pod.Created },
                new V1PodCondition { Type = "Initialized", Status = "True", LastTransitionTime = pod.Created },
                new V1PodCondition { Type = "ContainersReady", Status = Bool(pod.Ready), LastTransitionTime = now },
                new V1PodCondition { Type = "Ready", Status = Bool(pod.Ready), LastTransitionTime = now },
            ],
            ContainerStatuses = [.. pod.Containers.Where(c => !c.Sidecar).Select(Status)],
            InitContainerStatuses = [.. pod.Containers.Where(c => c.Sidecar).Select(Status)],
        };
        V1ContainerStatus Status(Container c) => new()
        {
            Name = c.Spec.Name, Image = c.Spec.Image, ImageID = "", Ready = c.Ready, Started = c.Started, RestartCount = 0,
            State = new V1ContainerState { Running = new V1ContainerStateRunning { StartedAt = pod.Created } },
        };
        var patch = new V1Patch(KubernetesJson.Serialize(new V1Pod { Status = status }), V1Patch.PatchType.MergePatch);
        await _client.CoreV1.PatchNamespacedPodStatusAsync(patch, pod.Name, pod.Namespace);
    }

    /// <summary>What the controllers and the kubelet do once Deployments are deleted: their pods are stopped (SIGTERM, then SIGKILL after the grace period) and removed.</summary>
    public async Task SyncAsync(string ns)
    {
        var deployments = (await _client.AppsV1.ListNamespacedDeploymentAsync(ns)).Items.Select(d => d.Name()).ToHashSet();
        await Task.WhenAll(_pods.Where(p => !p.Stopped && !deployments.Contains(p.Deployment)).Select(async pod =>
        {
            await StopAsync(pod, TimeSpan.FromSeconds(Math.Min(pod.Spec.TerminationGracePeriodSeconds ?? 30, 15)));
            await _client.CoreV1.DeleteNamespacedPodAsync(pod.Name, pod.Namespace, gracePeriodSeconds: 0);
        }));
    }

    private static async Task StopAsync(Pod pod, TimeSpan grace)
    {
        pod.Stopped = true;
        // App containers first, then sidecars in reverse order, as the kubelet terminates them.
        foreach (var container in pod.Containers.Where(c => !c.Sidecar).Concat(pod.Containers.Where(c => c.Sidecar).Reverse()))
        {
            var process = container.Process!;
            if (process.HasExited) continue;
            _ = kill(process.Id, 15);
            using var wait = new CancellationTokenSource(grace);
            try { await process.WaitForExitAsync(wait.Token); }
            catch (OperationCanceledException) { process.Kill(); await process.WaitForExitAsync(); }
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    /// <summary>The last lines every container printed, for a failure message.</summary>
    public string Logs(int lines) => string.Join("\n", _pods.SelectMany(p => p.Containers.Select(c => $"----- {p.Name}/{c.Spec.Name} ({p.Address})\n{c.Tail(lines)}")));

    /// <summary>Writes every container's log (what it printed so far) to <paramref name="directory"/>, one file per container.</summary>
    public void SaveLogs(string directory)
    {
        Directory.CreateDirectory(directory);
        foreach (var pod in _pods)
            foreach (var container in pod.Containers)
                File.WriteAllLines(Path.Combine(directory, $"{pod.Name}.{container.Spec.Name}.log"), container.Lines);
    }

    public IEnumerable<string> AllLogLines => _pods.SelectMany(p => p.Containers).SelectMany(c => c.Lines);

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_pods.Where(p => !p.Stopped).Select(p => StopAsync(p, TimeSpan.FromSeconds(5))));
        await _stop.CancelAsync();
        await Task.WhenAll(_probing);
        foreach (var proxy in _proxies) await proxy.DisposeAsync();
        foreach (var dir in Enumerable.Reverse(_mountPoints))
            try { Directory.Delete(dir); } catch (IOException) { }
        _client.Dispose();
        _stop.Dispose();
    }
}

internal sealed class Pod
{
    public required string Name { get; init; }
    public required string Namespace { get; init; }
    public required string Deployment { get; init; }
    public required IPAddress Address { get; init; }
    public required string NetworkNamespace { get; init; }
    public required V1PodSpec Spec { get; init; }
    public required Dictionary<string, string> Labels { get; init; }
    public required IDictionary<string, string> Annotations { get; init; }
    public required string Directory { get; init; }
    public DateTime Created { get; } = DateTime.UtcNow;
    public string Uid { get; set; } = "";
    public List<Container> Containers { get; } = [];
    public volatile bool Stopped;

    public bool Ready => !Stopped && Containers.Count > 0 && Containers.All(c => c.Ready);

    /// <summary>A port by number, or by the name a container gives it.</summary>
    public int Port(IntOrString port) =>
        int.TryParse(port.Value, out var number) ? number
        : Spec.Containers.Concat(Spec.InitContainers ?? []).SelectMany(c => c.Ports ?? []).FirstOrDefault(p => p.Name == port.Value)?.ContainerPort
          ?? throw new InvalidOperationException($"{Name}: no container port is named '{port.Value}'.");
}

internal sealed class Container
{
    private readonly ConcurrentQueue<string> _lines = new();
    public required V1Container Spec { get; init; }
    public required bool Sidecar { get; init; }
    public Process? Process { get; set; }
    public volatile bool Ready;
    public volatile bool Started;
    public bool EverReady;
    public bool ExitReported;
    public DateTime? LivenessFailingSince;

    public IEnumerable<string> Lines => _lines;

    public void Append(string? line)
    {
        if (line is null) return;
        _lines.Enqueue(line);
        while (_lines.Count > 2000) _lines.TryDequeue(out _);
    }

    public string Tail(int lines) => string.Join("\n", _lines.TakeLast(lines));
}
