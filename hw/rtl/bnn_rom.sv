// Synchronous-read ROM initialised from a $readmemh file.
//
// The RAM_STYLE choice needs a literal attribute string, so each style is its own
// generate branch: "block" maps to BRAM, "distributed" to LUTs, "auto" lets the
// synthesis tool decide. The read register has an enable so a stalled pipeline
// keeps its word, which BRAM output registers support natively.
module bnn_rom #(
    parameter int    WIDTH     = 8,
    parameter int    DEPTH     = 16,
    parameter        INIT_FILE = "",
    parameter        RAM_STYLE = "auto"
) (
    input  logic                               clk,
    input  logic                               en,
    input  logic [$clog2(DEPTH > 1 ? DEPTH : 2)-1:0] addr,
    output logic [WIDTH-1:0]                   q
);
    // String parameters compare as bit vectors zero-extended on the left, which is
    // exact; Verilator's lint only sees operands of different widths.
    /* verilator lint_off WIDTHEXPAND */
    if (RAM_STYLE == "block") begin : g_block
        (* rom_style = "block" *) logic [WIDTH-1:0] mem [DEPTH];
        initial $readmemh(INIT_FILE, mem);
        always_ff @(posedge clk) if (en) q <= mem[addr];
    end else if (RAM_STYLE == "distributed") begin : g_dist
`ifdef YOSYS
        // A ROM in LUTs: Vivado calls that "distributed"; Yosys only maps writable
        // memories to LUTRAM and needs "logic" for the same result.
        (* rom_style = "logic" *) logic [WIDTH-1:0] mem [DEPTH];
`else
        (* rom_style = "distributed" *) logic [WIDTH-1:0] mem [DEPTH];
`endif
        initial $readmemh(INIT_FILE, mem);
        always_ff @(posedge clk) if (en) q <= mem[addr];
    end else begin : g_auto
        logic [WIDTH-1:0] mem [DEPTH];
        initial $readmemh(INIT_FILE, mem);
        always_ff @(posedge clk) if (en) q <= mem[addr];
    end
    /* verilator lint_on WIDTHEXPAND */
endmodule
