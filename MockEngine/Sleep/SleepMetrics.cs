using System.Text;

namespace HybridServing.MockEngine.Sleep;

/// <summary>
/// vLLM's <c>vllm:engine_sleep_state</c> gauge (registered only with <c>--enable-sleep-mode</c>):
/// one series per state, 1 for the current one.
/// </summary>
internal static class SleepMetrics
{
    public const string Name = "vllm:engine_sleep_state";

    public static string Label(SleepLevel level) => level switch
    {
        SleepLevel.Awake => "awake",
        SleepLevel.WeightsOffloaded => "weights_offloaded",
        _ => "discard_all",
    };

    public static void Render(StringBuilder sb, string labels, SleepLevel current)
    {
        sb.Append("# HELP ").Append(Name).Append(" Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.\n");
        sb.Append("# TYPE ").Append(Name).Append(" gauge\n");
        foreach (var level in Enum.GetValues<SleepLevel>())
            sb.Append(Name).Append('{').Append(labels).Append(",sleep_state=\"").Append(Label(level)).Append("\"} ")
                .Append(level == current ? "1.0" : "0.0").Append('\n');
    }
}
