using HybridServing.AppHost.Orchestration;
using HybridServing.AppHost.Topology;

namespace HybridServing.AppHost;

/// <summary>Prefixed, coloured log lines of every component, and the resource table.</summary>
internal sealed class ConsoleLog
{
    private static readonly ConsoleColor[] Palette =
        [ConsoleColor.Cyan, ConsoleColor.Green, ConsoleColor.Yellow, ConsoleColor.Magenta, ConsoleColor.Blue, ConsoleColor.DarkCyan, ConsoleColor.DarkGreen, ConsoleColor.DarkYellow];

    private readonly Lock _gate = new();
    private readonly Dictionary<string, ConsoleColor> _colors = [];
    private readonly bool _color = !Console.IsOutputRedirected;

    public void Line(string resource, string text)
    {
        lock (_gate)
        {
            if (!_colors.TryGetValue(resource, out var color))
                _colors[resource] = color = Palette[_colors.Count % Palette.Length];
            if (_color) Console.ForegroundColor = color;
            Console.Write($"{resource,-13}| ");
            if (_color) Console.ResetColor();
            Console.WriteLine(text);
        }
    }

    public void Info(string text) => Line("apphost", text);

    public void Error(string text)
    {
        lock (_gate) Console.Error.WriteLine($"apphost      | error: {text}");
    }

    public void Failure(ResourceFailedException e)
    {
        lock (_gate)
        {
            Console.Error.WriteLine($"apphost      | error: {e.Message}");
            if (e.RecentOutput.Count > 0)
            {
                Console.Error.WriteLine($"apphost      | last output of {e.Resource}:");
                foreach (var l in e.RecentOutput) Console.Error.WriteLine($"{e.Resource,-13}| {l}");
            }
        }
    }

    public void PrintResources(LocalStack stack)
    {
        lock (_gate)
        {
            Console.WriteLine();
            Console.WriteLine($"  {"resource",-14}{"pid",-8}{"endpoints"}");
            Console.WriteLine($"  {new string('-', 14)}{new string('-', 8)}{new string('-', 50)}");
            foreach (var r in stack.Resources)
            {
                var pid = stack.Processes.FirstOrDefault(p => p.Name == r.Name)?.Id.ToString() ?? "-";
                Console.WriteLine($"  {r.Name,-14}{pid,-8}{string.Join("  ", r.Endpoints.Select(e => $"{e.Name}={e.Url}"))}");
            }
            Console.WriteLine();
            Console.WriteLine($"  Gateway (OpenAI API): {stack.Endpoint(LocalTopology.GatewayName)}   API key: {LocalStack.DevApiKey}");
            Console.WriteLine($"  LoraAdapter status:   {stack.Endpoint(LocalTopology.ControlPlaneName)}apis/hybridserving.io/v1alpha1/namespaces/default/loraadapters");
            Console.WriteLine($"  Manifests folder:     {stack.ManifestsPath}");
            Console.WriteLine("  Press Ctrl+C to stop.");
            Console.WriteLine();
        }
    }
}
